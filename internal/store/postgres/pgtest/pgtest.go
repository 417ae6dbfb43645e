// Package pgtest gives tests a fresh PostgreSQL database on the server
// HALLMARK_TEST_POSTGRES names (default: the local server, user postgres,
// trust authentication), dropped when the test ends. An unreachable server
// fails the test with what to do: these tests must not pass by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultServer is the server used when HALLMARK_TEST_POSTGRES is unset.
const DefaultServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL is the test server's URL.
func ServerURL() string {
	if u := os.Getenv("HALLMARK_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultServer
}

// NewDatabase creates an empty database, dropped (with any connection
// still open to it) when the test ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return NewDatabaseFrom(t, "")
}

// NewDatabaseFrom creates a database as a copy of the database template
// (the server's default template if empty), dropped like NewDatabase's,
// and returns its URL. Nothing may be connected to template meanwhile;
// copies may be made from it at once.
func NewDatabaseFrom(t testing.TB, template string) string {
	t.Helper()
	admin := Connect(t)
	var b [8]byte
	rand.Read(b[:])
	name := "hallmark_test_" + hex.EncodeToString(b[:])
	create := "CREATE DATABASE " + name
	if template != "" {
		create += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := admin.Exec(t.Context(), create); err != nil {
		admin.Close(context.Background())
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(ServerURL())
	if err != nil {
		t.Fatalf("HALLMARK_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Connect opens a connection to the test server's default database.
func Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		// pgx errors name the host and user, not the password.
		t.Fatalf("cannot reach the PostgreSQL test server (%v): start PostgreSQL on 127.0.0.1:5432 "+
			"with trust authentication for user postgres, or set HALLMARK_TEST_POSTGRES to a "+
			"postgres:// URL of a server where the tests may create databases", err)
	}
	return conn
}
