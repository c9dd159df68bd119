package console

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
)

// sourcesDigest is web/build.mjs's digest of the console's sources: every file under web/
// but node_modules/, sorted by slash path, each hashed as "path\0size\0" then its bytes.
func sourcesDigest(web string) (string, error) {
	var files []string
	err := filepath.WalkDir(web, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(web, p)
		if d.IsDir() && filepath.ToSlash(rel) == "node_modules" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(web, filepath.FromSlash(f)))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TestBundleIsFresh fails when a console source changed without `make console`: the bundle
// records the digest of the sources it was built from. (`make test-console` also rebuilds
// the bundle and compares every byte.)
func TestBundleIsFresh(t *testing.T) {
	want, err := sourcesDigest("web")
	if err != nil {
		t.Fatal(err)
	}
	js, err := dist.ReadFile("dist/app.js")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^/\* flowwatch console; built by .* from web/ sources sha256:([0-9a-f]{64}) \*/`).FindSubmatch(js)
	if m == nil {
		t.Fatal("dist/app.js does not start with the digest of its sources; run `make console`")
	}
	if got := string(m[1]); got != want {
		t.Fatalf("console/dist was built from other sources (sha256 %s) than web/ holds now (%s): run `make console` and commit console/dist", got, want)
	}
}

// TestSourcesDigestChangesWithAnyFile: the digest covers names and contents, so the
// freshness check cannot miss an edit, an added file or a rename.
func TestSourcesDigestChangesWithAnyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	digest := func() string {
		d, err := sourcesDigest(dir)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	write("src/a.ts", "a")
	write("node_modules/x/index.js", "x")
	seen := map[string]string{"start": digest()}
	step := func(name string, change func()) {
		change()
		d := digest()
		for prev, pd := range seen {
			if pd == d {
				t.Fatalf("after %s the digest equals the one after %s", name, prev)
			}
		}
		seen[name] = d
	}
	step("an edit", func() { write("src/a.ts", "b") })
	step("a new file", func() { write("src/b.ts", "") })
	step("a rename", func() { os.Rename(filepath.Join(dir, "src", "b.ts"), filepath.Join(dir, "src", "c.ts")) })
	before := digest()
	write("node_modules/x/index.js", "y")
	if digest() != before {
		t.Fatal("node_modules changed the digest")
	}
}
