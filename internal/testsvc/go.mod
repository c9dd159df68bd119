module github.com/flowwatch/flowwatch/internal/testsvc

go 1.26.5

require golang.org/x/crypto v0.58.0
