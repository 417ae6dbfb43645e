// Package migration owns the form of a store backend's schema history:
// files migrations/NNNN_name.sql, numbered from 0001 without gaps, each
// applied once in order. A released migration is never edited; a change is
// a new file. Each backend applies them its own way.
package migration

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
)

// ErrTooNew reports a database whose schema is newer than this binary
// knows: a newer Hallmark migrated it.
var ErrTooNew = errors.New("database schema is newer than this binary")

// Migration is one step of a schema's history.
type Migration struct {
	Version int    // from 1
	Name    string // the file name's name part
	SQL     string
}

var fileName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// Load reads dir in fsys and checks the files are numbered 1, 2, 3...
// with nothing else beside them.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries { // sorted by name, hence by number
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q: name is not NNNN_name.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		if version != len(ms)+1 {
			return nil, fmt.Errorf("migration file %q: want number %04d", e.Name(), len(ms)+1)
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration: %w", err)
		}
		ms = append(ms, Migration{Version: version, Name: m[2], SQL: string(body)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	return ms, nil
}

// CheckHistory checks the migrations a database records as applied
// (version to name) against ms: none newer than ms knows (ErrTooNew), and
// each with the name ms gives it (else the database has another history).
func CheckHistory(applied map[int]string, ms []Migration) error {
	for version, name := range applied {
		if version > len(ms) {
			return fmt.Errorf("schema version %d, this binary knows up to %d: %w", version, len(ms), ErrTooNew)
		}
		if version < 1 {
			return fmt.Errorf("schema version %d (%q) is not a migration number", version, name)
		}
		if want := ms[version-1].Name; want != name {
			return fmt.Errorf("schema version %d is %q in the database but %q in this binary", version, name, want)
		}
	}
	return nil
}
