package hub_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/runlog/runlog/hub"
)

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := hub.ReadTokenFile(write("tok", "  s3cret\n")); err != nil || tok != "s3cret" {
		t.Fatalf("ReadTokenFile = %q, %v; want s3cret without the white space", tok, err)
	}
	if tok, err := hub.ReadTokenFile(""); err != nil || tok != "" {
		t.Fatalf("ReadTokenFile(\"\") = %q, %v; want no token and no error", tok, err)
	}
	// A file that lost its token must not turn auth off.
	if tok, err := hub.ReadTokenFile(write("blank", " \n\t")); err == nil {
		t.Fatalf("ReadTokenFile(blank file) = %q; want an error", tok)
	}
	if tok, err := hub.ReadTokenFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadTokenFile(missing) = %q, %v; want a not-exist error", tok, err)
	}
}
