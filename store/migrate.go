package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the PostgreSQL schema's versions, NNNN_name.sql, applied in
// order, each in its own transaction.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrateLock is the advisory lock key that hubs starting together take, so
// that one of them applies the migrations and the others find them applied.
const migrateLock = 0x72756e6c6f67 // "runlog"

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", base)
		}
		b, err := migrations.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d", m.name, i+1)
		}
	}
	return out, nil
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int {
	ms, err := loadMigrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate brings the database's schema to this build's version under a
// session advisory lock and returns the version it found.
func migrate(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	ms, err := loadMigrations()
	if err != nil {
		return 0, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", classify(err))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrateLock)); err != nil {
		return 0, fmt.Errorf("migrate: lock: %w", classify(err))
	}
	defer func() {
		// A failed unlock (the connection broke) drops the session, and
		// with it the lock.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrateLock)); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS runlog_schema (
		version    int PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", classify(err))
	}
	var found int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM runlog_schema").Scan(&found); err != nil {
		return 0, fmt.Errorf("migrate: %w", classify(err))
	}
	if found > len(ms) {
		return found, fmt.Errorf("migrate: the database's schema is version %d, newer than this build's %d: upgrade runlog", found, len(ms))
	}
	for _, m := range ms[found:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO runlog_schema (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return found, fmt.Errorf("migrate: apply %s: %w", m.name, classify(err))
		}
	}
	return found, nil
}
