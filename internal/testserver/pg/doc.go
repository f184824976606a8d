// Package pg starts throwaway PostgreSQL clusters for tests.
//
// [Start] runs initdb in a new temporary directory, configures the cluster
// for logical replication (wal_level=logical, replication slots and WAL
// senders to spare, synchronous_commit on), starts it with pg_ctl on
// 127.0.0.1 and a free port, with its unix socket in the same directory,
// and removes everything when the test ends:
//
//	c := pg.Start(t)
//	url := c.CreateDB("app") // postgres://postgres@127.0.0.1:PORT/app?sslmode=disable
//	c.Exec("app", "create table t (id int primary key)")
//
// Authentication is trust for the superuser postgres. [Cluster.Stop] and
// [Cluster.Start] stop and restart the server on the same port, for outage
// tests. A cluster outlives neither its test nor its process: a watchdog
// removes it when the process dies without closing it (a panic, a kill).
//
// initdb and pg_ctl refuse to run as root: a root process runs them as the
// postgres user through runuser, and the temporary directory is handed to
// that user. The binaries are looked up on PATH, then in
// /usr/lib/postgresql/<version>/bin. Without them, Start skips the test
// with a message saying how to install PostgreSQL, except under CI=true,
// where it fails the test: a CI run must not pass by skipping.
package pg
