package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/runlog/runlog/store"
)

func TestIsPostgresURL(t *testing.T) {
	for in, want := range map[string]bool{
		"postgres://u@h/db": true,
		"postgresql://h/db": true,
		"/var/lib/runlog":   false,
		"postgres":          false,
		"./postgres://x":    false,
		"mysql://u@h/db":    false,
		"":                  false,
	} {
		if got := store.IsPostgresURL(in); got != want {
			t.Errorf("IsPostgresURL(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestOpenURLOpensADirectory(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenURL(context.Background(), dir, store.URLOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok := st.(*store.Bolt); !ok || st.Path() == "" {
		t.Fatalf("OpenURL(%s) = %T at %q; want a *store.Bolt", dir, st, st.Path())
	}
	// The directory is held: a second open fails, and with a nil store.
	again, err := store.OpenURL(context.Background(), dir, store.URLOptions{Bolt: store.Options{LockTimeout: 10 * time.Millisecond}})
	if !errors.Is(err, store.ErrLocked) || again != nil {
		t.Fatalf("second OpenURL = %v, %v; want nil, ErrLocked", again, err)
	}
}
