package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/rampart-io/rampart/schema/ddl"
	"github.com/rampart-io/rampart/testkit/chdbtest"
)

// chdbInserter inserts the generator's RowBinary into chDB, which has no
// HTTP interface: each batch goes through a file read by the file() table
// function, the bytes exactly those the server's HTTP insert takes.
type chdbInserter struct {
	e  *chdbtest.Engine
	db string
}

// structure is the file() structure of the named columns of ddl.Events.
func structure(names []string) (string, error) {
	cols := make([]string, len(names))
	for i, n := range names {
		c, ok := ddl.Lookup(n)
		if !ok {
			return "", fmt.Errorf("chdb insert: no column %s in ddl.Events", n)
		}
		cols[i] = c.Name + " " + c.Type.SQL()
	}
	return strings.Join(cols, ", "), nil
}

func (c chdbInserter) InsertRowBinary(ctx context.Context, table string, columns []string, rows []byte) error {
	st, err := structure(columns)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "rampart-forensic-*.rowbinary")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(rows)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return c.e.Exec(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT * FROM file('%s', 'RowBinary', '%s')",
		c.db, table, strings.Join(columns, ", "), f.Name(), st))
}
