module github.com/flowwatch/flowwatch/internal/testctx

go 1.26.5
