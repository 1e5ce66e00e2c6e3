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

// structure is the file() structure of ddl.Events.
var structure = func() string {
	cols := make([]string, len(ddl.Events))
	for i, c := range ddl.Events {
		cols[i] = c.Name + " " + c.Type.SQL()
	}
	return strings.Join(cols, ", ")
}()

func (c chdbInserter) InsertRowBinary(ctx context.Context, table string, columns []string, rows []byte) error {
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
	if len(columns) != len(ddl.Events) {
		return fmt.Errorf("chdb insert: %d columns, the file holds %d", len(columns), len(ddl.Events))
	}
	return c.e.Exec(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT * FROM file('%s', 'RowBinary', '%s')",
		c.db, table, strings.Join(columns, ", "), f.Name(), structure))
}
