package store_test

import (
	"os"
	"testing"

	"github.com/runlog/runlog/store/pgtest"
	"github.com/runlog/runlog/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestConformanceBolt(t *testing.T) { storetest.Conformance(t, storetest.Bolt()) }

func TestConformancePostgres(t *testing.T) { storetest.Conformance(t, storetest.Postgres()) }
