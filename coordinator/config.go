package coordinator

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/internal/spi"
	"github.com/dsyncio/dsync/internal/version"
)

// Store is what the coordinator needs of a checkpoint store;
// *checkpoint.Store implements it. Every write must be atomic and durable when
// it returns, and positions must only move forward (see package checkpoint).
type Store interface {
	// Dir names where the state lives, for messages.
	Dir() string
	CreateFlow(meta checkpoint.FlowMeta, parts []checkpoint.PartitionState, ups []checkpoint.UpdateState) error
	Flow(id string) (checkpoint.FlowMeta, error)
	Flows() ([]checkpoint.FlowMeta, error)
	Partitions(id string) ([]checkpoint.PartitionState, error)
	Updates(id string) ([]checkpoint.UpdateState, error)
	Checkpoint(id string, parts []checkpoint.PartitionCheckpoint, ups []checkpoint.UpdateCheckpoint) error
	SetPhase(id, phase string) error
	ResetFlow(id string) error
}

var _ Store = (*checkpoint.Store)(nil)

// Mode selects what a flow does.
type Mode string

const (
	// ModeFull copies every namespace, then applies changes until stopped.
	ModeFull Mode = "full"
	// ModeInitial copies every namespace and returns.
	ModeInitial Mode = "initial"
	// ModeCDC applies changes from now on until stopped, without a copy.
	ModeCDC Mode = "cdc"
)

// ParseMode parses "full", "initial" or "cdc".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeFull, ModeInitial, ModeCDC:
		return m, nil
	}
	return "", fmt.Errorf("%w: unknown mode %q (want full, initial or cdc)", ErrInvalidConfig, s)
}

// RetryPolicy says how retryable errors (spi.IsRetryable) are retried: with
// capped exponential backoff and jitter, and at most MaxConsecutiveFailures
// times in a row for one operation.
type RetryPolicy struct {
	// InitialBackoff is the wait after the first failure; it doubles with
	// each further failure. Default 100 ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait. Default 10 s.
	MaxBackoff time.Duration
	// Jitter is the fraction of each wait chosen at random, in [0, 1], so
	// that many failing workers do not retry in lockstep. Default 0.2; a
	// negative value means none.
	Jitter float64
	// MaxConsecutiveFailures fails the operation, and the run, after that
	// many retryable failures in a row. Default 8.
	MaxConsecutiveFailures int
	// StreamOutage is how long an update stream keeps being reopened
	// through consecutive failures (a source restart, a failover) before
	// MaxConsecutiveFailures can fail the run. Default 1 minute.
	StreamOutage time.Duration
}

// StartInfo is what Config.OnStart receives once the flow is known.
type StartInfo struct {
	// FlowID identifies the flow in the store.
	FlowID string
	// StateDir is Store.Dir().
	StateDir string
	// Resumed is true when the flow was found in the store.
	Resumed bool
	// Phase is the stored phase the run starts in: copy, cdc or done.
	Phase string
}

// Config configures a flow. Fields without a default are required where
// stated. Options that define the flow (connector ids, Namespaces,
// TransformSpecs, Mode) are hashed into its id; the others may change
// between runs of the same flow.
type Config struct {
	// Source is read. Required; in full and cdc mode it must implement
	// spi.UpdateStreamer and report the Updates capability.
	Source spi.Source
	// Sink is written. Required.
	Sink spi.Sink
	// Transforms are applied in order to every batch after namespace
	// mapping; TransformSpecs are their specs ("name:args"), one per
	// transform, part of the flow id. Default none.
	Transforms     []spi.Transform
	TransformSpecs []string
	// Store holds the flow's plan and checkpoints. Required.
	Store Store
	// Namespaces selects and renames namespaces. Default: every namespace,
	// unchanged.
	Namespaces NamespaceMap
	// Mode is full, initial or cdc. Default full.
	Mode Mode
	// Parallel is the number of partitions read at once. Default 4.
	Parallel int
	// Writers is the number of concurrent WriteData calls during the copy,
	// and the number of CDC lanes. Default 8.
	Writers int
	// BatchBytes bounds the payload of one write call; a single larger
	// document is written alone. Default 4 MiB.
	BatchBytes int
	// MaxInflight bounds the bytes admitted and not yet written, in the
	// copy and in CDC; a larger page is admitted alone. Each reader may hold
	// one more page while it waits for admission. Default 64 MiB.
	MaxInflight int64
	// Reset discards the stored flow of this source and sink (and any
	// unfinished one with other options) and starts over. Default false.
	Reset bool
	// UntilLag, when positive in full or cdc mode, ends the run with
	// Result.Cutover once the CDC lag of every update stream has stayed
	// below it for Settle. Default 0: run until stopped.
	UntilLag time.Duration
	// Settle is how long the lag must stay below UntilLag. Default 5 s.
	Settle time.Duration
	// DrainTimeout bounds how long in-flight writes may take to finish once
	// the run stops. Default 30 s.
	DrainTimeout time.Duration
	// NoIndexes skips copying secondary indexes after the copy. Default
	// false: indexes are copied when the source can list them and the sink
	// can create them.
	NoIndexes bool
	// Retry is the retry policy for every source, sink and transform call.
	Retry RetryPolicy
	// Logger receives progress and warnings. Default: discard.
	Logger *slog.Logger
	// SourceDisplay and SinkDisplay describe the connectors in the store,
	// already redacted (no secrets). Default: the connector's Info.ID.
	SourceDisplay, SinkDisplay string
	// DsyncVersion is recorded with a new flow. Default: this build's.
	DsyncVersion string
	// OnStart, if set, is called once the flow id is known and before any
	// data is read.
	OnStart func(StartInfo)
}

// Defaults.
const (
	DefaultParallel     = 4
	DefaultWriters      = 8
	DefaultBatchBytes   = 4 << 20
	DefaultMaxInflight  = 64 << 20
	DefaultSettle       = 5 * time.Second
	DefaultDrainTimeout = 30 * time.Second

	DefaultInitialBackoff         = 100 * time.Millisecond
	DefaultMaxBackoff             = 10 * time.Second
	DefaultJitter                 = 0.2
	DefaultMaxConsecutiveFailures = 8
	DefaultStreamOutage           = time.Minute
)

// EnsureDefaults fills in the default of every unset field and returns c.
func (c *Config) EnsureDefaults() *Config {
	if c.Mode == "" {
		c.Mode = ModeFull
	}
	if c.Parallel == 0 {
		c.Parallel = DefaultParallel
	}
	if c.Writers == 0 {
		c.Writers = DefaultWriters
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Retry.InitialBackoff == 0 {
		c.Retry.InitialBackoff = DefaultInitialBackoff
	}
	if c.Retry.MaxBackoff == 0 {
		c.Retry.MaxBackoff = DefaultMaxBackoff
	}
	if c.Retry.Jitter == 0 {
		c.Retry.Jitter = DefaultJitter
	}
	if c.Retry.StreamOutage == 0 {
		c.Retry.StreamOutage = DefaultStreamOutage
	}
	if c.Retry.MaxConsecutiveFailures == 0 {
		c.Retry.MaxConsecutiveFailures = DefaultMaxConsecutiveFailures
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.DsyncVersion == "" {
		c.DsyncVersion = version.String()
	}
	return c
}

// Validate reports whether the configuration can run; errors wrap
// [ErrInvalidConfig].
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Source == nil:
		return bad("no source")
	case c.Sink == nil:
		return bad("no sink")
	case c.Store == nil:
		return bad("no checkpoint store")
	case len(c.Transforms) != len(c.TransformSpecs):
		return bad("%d transforms but %d transform specs", len(c.Transforms), len(c.TransformSpecs))
	case c.Parallel < 1:
		return bad("parallel must be at least 1, got %d", c.Parallel)
	case c.Writers < 1:
		return bad("writers must be at least 1, got %d", c.Writers)
	case c.BatchBytes < 1:
		return bad("batch bytes must be positive, got %d", c.BatchBytes)
	case c.MaxInflight < 1:
		return bad("max in-flight bytes must be positive, got %d", c.MaxInflight)
	case c.UntilLag < 0:
		return bad("until-lag must not be negative, got %s", c.UntilLag)
	case c.UntilLag > 0 && c.Mode == ModeInitial:
		return bad("until-lag needs full or cdc mode")
	case c.Settle < 0:
		return bad("settle window must not be negative, got %s", c.Settle)
	case c.DrainTimeout < 0:
		return bad("drain timeout must not be negative, got %s", c.DrainTimeout)
	case c.Retry.InitialBackoff < 0 || c.Retry.MaxBackoff < c.Retry.InitialBackoff:
		return bad("retry backoff must satisfy 0 <= initial (%s) <= max (%s)", c.Retry.InitialBackoff, c.Retry.MaxBackoff)
	case c.Retry.Jitter > 1:
		return bad("retry jitter must be at most 1, got %g", c.Retry.Jitter)
	case c.Retry.MaxConsecutiveFailures < 1:
		return bad("max consecutive failures must be at least 1, got %d", c.Retry.MaxConsecutiveFailures)
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	for i, t := range c.Transforms {
		if t == nil {
			return bad("transform %d (%s) is nil", i, c.TransformSpecs[i])
		}
	}
	return nil
}
