// Package ferret starts an embedded FerretDB server (MongoDB wire protocol,
// SQLite storage) for tests. Only test code imports it, so FerretDB never
// reaches the dsync binary.
//
// [Start] serves on a free loopback port with its data in a temporary
// directory and stops the server when the test ends. [WithOplog] creates the
// capped collection local.oplog.rs, after which FerretDB records an oplog
// (op i, u with {$v: 1, $set: <whole document>}, d) that an oplog tailer can
// follow; FerretDB has no change streams.
//
// When the server cannot start, Start fails the test under CI=true and skips
// it otherwise, saying why.
package ferret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DefaultOplogSize is the size in bytes of the capped oplog created by
// [WithOplog]: large enough that tests never lose history to it.
const DefaultOplogSize = 512 << 20

// startTimeout bounds how long Start waits for the server to answer.
const startTimeout = 30 * time.Second

// Option configures Start.
type Option func(*config)

type config struct {
	oplogSize int64
	logLevel  slog.Level
}

// WithOplog creates the capped collection local.oplog.rs of
// [DefaultOplogSize] bytes before Start returns, so that every later write
// is recorded in the oplog.
func WithOplog() Option {
	return func(c *config) { c.oplogSize = DefaultOplogSize }
}

// WithOplogSize is [WithOplog] with a capped size of n bytes.
func WithOplogSize(n int64) Option {
	return func(c *config) { c.oplogSize = n }
}

// WithLogLevel sets the level from which FerretDB's own log reaches stderr.
// Default slog.LevelError.
func WithLogLevel(l slog.Level) Option {
	return func(c *config) { c.logLevel = l }
}

// Start starts an embedded FerretDB and returns its connection string,
// mongodb://127.0.0.1:PORT/. The server and its data are removed when t
// ends.
func Start(t TB, opts ...Option) string {
	t.Helper()
	cfg := config{logLevel: slog.LevelError}
	for _, o := range opts {
		o(&cfg)
	}
	uri, stop, err := start(t.TempDir(), cfg)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("start embedded FerretDB: %v", err)
		}
		t.Skipf("embedded FerretDB could not start (CI is not true, so the test is skipped): %v", err)
	}
	t.Cleanup(stop)
	return uri
}

// TB is the part of testing.TB that Start uses.
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// newMu serialises ferretdb.New, which writes package state.
var newMu sync.Mutex

func start(dir string, cfg config) (uri string, stop func(), err error) {
	logger := slog.New(slog.NewTextHandler(logWriter(cfg.logLevel), &slog.HandlerOptions{Level: cfg.logLevel}))
	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    logger,
	})
	newMu.Unlock()
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	stop = func() {
		cancel()
		<-done
	}
	uri = f.MongoDBURI()
	if err := ready(uri, cfg); err != nil {
		stop()
		return "", nil, err
	}
	return uri, stop, nil
}

func logWriter(l slog.Level) io.Writer {
	if l > slog.LevelError {
		return io.Discard
	}
	return os.Stderr
}

// ready pings the server and creates the oplog when asked.
func ready(uri string, cfg config) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	for {
		err = client.Ping(ctx, nil)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("server at %s did not answer within %v: %w", uri, startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cfg.oplogSize > 0 {
		err := client.Database("local").CreateCollection(ctx, "oplog.rs",
			options.CreateCollection().SetCapped(true).SetSizeInBytes(cfg.oplogSize))
		var ce mongo.CommandError
		if err != nil && !(errors.As(err, &ce) && ce.Name == "NamespaceExists") {
			return fmt.Errorf("create local.oplog.rs: %w", err)
		}
		if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
			return err
		}
	}
	return nil
}
