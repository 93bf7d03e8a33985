package storetest

import (
	"context"
	"sync"
	"testing"

	"github.com/runlog/runlog/store"
	"github.com/runlog/runlog/store/pgtest"
)

// Bolt is the conformance Backend of the bbolt store.
func Bolt() Backend {
	return Backend{Fresh: func(t testing.TB) func() Store {
		dir := t.TempDir()
		return func() Store { return OpenDir(t, dir) }
	}}
}

// OpenPostgres opens a Postgres store on the database at url and closes it
// on cleanup.
func OpenPostgres(t testing.TB, url string) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), url, store.PostgresOptions{})
	if err != nil {
		t.Fatalf("open postgres store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Postgres is the conformance Backend of the PostgreSQL store: each store is
// a new database on the package's shared cluster (see pgtest.DB, and call
// pgtest.Main from TestMain).
func Postgres() Backend {
	var (
		mu   sync.Mutex
		urls = map[Store]string{}
	)
	return Backend{
		Fresh: func(t testing.TB) func() Store {
			url := pgtest.DB(t)
			return func() Store {
				s := OpenPostgres(t, url)
				mu.Lock()
				urls[s] = url
				mu.Unlock()
				return s
			}
		},
		Shared: func(t testing.TB, s Store) Store {
			mu.Lock()
			url := urls[s]
			mu.Unlock()
			return OpenPostgres(t, url)
		},
	}
}
