package flowexporter

// EmbeddedDirForTest is the chDB folder every test of this binary shares (one per process).
func EmbeddedDirForTest() string { return embeddedDir }
