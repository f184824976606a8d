package postgres

import (
	"encoding/json"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/dsyncio/dsync/sdk"
)

// Cursors are small JSON documents with a kind and a version, so that a
// cursor of one kind (or of a newer connector) is refused with a clear
// message instead of being misread. Key values are the PostgreSQL text of
// the key columns (base64 in JSON: the text need not be UTF-8).

const cursorVersion = 1

// Cursor kinds.
const (
	kindPartition = "partition"
	kindPage      = "page"
	kindUpdates   = "updates"
)

// partCursor defines a copy partition: a key range [Lo, Hi) (nil: open),
// or a range of heap blocks for a table without a primary key.
type partCursor struct {
	Kind string   `json:"k"`
	V    int      `json:"v"`
	NS   string   `json:"ns"`
	Lo   [][]byte `json:"lo,omitempty"`
	Hi   [][]byte `json:"hi,omitempty"`
	// Blocks [lo, hi) of a table without a primary key; hi < 0: to the
	// end of the table.
	Blocks *[2]int64 `json:"blocks,omitempty"`
	// BlocksPerPage is the window of one page over Blocks.
	BlocksPerPage int64 `json:"bpp,omitempty"`
}

// pageCursor is a position inside a partition: after the key After, or
// after the heap tuple (Block, Offset).
type pageCursor struct {
	Kind   string   `json:"k"`
	V      int      `json:"v"`
	After  [][]byte `json:"after,omitempty"`
	Block  int64    `json:"block,omitempty"`
	Offset int64    `json:"off,omitempty"`
}

// updCursor is a position in the change stream of a replication slot:
// every transaction whose commit record starts before LSN has been
// delivered, and with N > 0 also the first N changes of the transaction
// that commits at LSN. After a whole transaction, LSN is the end of its
// commit record, the position a replication client reports as flushed.
type updCursor struct {
	Kind      string `json:"k"`
	V         int    `json:"v"`
	LSN       string `json:"lsn"`
	N         int    `json:"n,omitempty"`
	Slot      string `json:"slot"`
	Pub       string `json:"pub"`
	SlotOwned bool   `json:"slot_owned,omitempty"`
	PubOwned  bool   `json:"pub_owned,omitempty"`

	lsn pglogrepl.LSN
}

func encodeCursor(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs always marshal
	}
	return b
}

func decodeCursor(b []byte, kind, what string, v interface{ kind() (string, int) }) error {
	if err := json.Unmarshal(b, v); err != nil {
		return sdk.InvalidArgument("postgres: %s cursor %q is not a cursor of this connector: pass cursors back as they were returned", what, truncate(b))
	}
	k, ver := v.kind()
	if k != kind {
		return sdk.InvalidArgument("postgres: %s cursor %q is a %s cursor: pass a %s cursor", what, truncate(b), k, kind)
	}
	if ver != cursorVersion {
		return sdk.InvalidArgument("postgres: %s cursor has version %d; this connector reads version %d", what, ver, cursorVersion)
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

func (c *partCursor) kind() (string, int) { return c.Kind, c.V }
func (c *pageCursor) kind() (string, int) { return c.Kind, c.V }
func (c *updCursor) kind() (string, int)  { return c.Kind, c.V }

func newUpdCursor(lsn pglogrepl.LSN, n int, r Replication) *updCursor {
	return &updCursor{Kind: kindUpdates, V: cursorVersion, LSN: lsn.String(), N: n, lsn: lsn,
		Slot: r.Slot, Pub: r.Publication, SlotOwned: r.SlotOwned, PubOwned: r.PublicationOwned}
}

func decodeUpdCursor(b []byte) (*updCursor, error) {
	var c updCursor
	if len(b) == 0 {
		return nil, sdk.InvalidArgument("postgres: empty update cursor: pass the cursor of GeneratePlan's update partition")
	}
	if err := decodeCursor(b, kindUpdates, "update", &c); err != nil {
		return nil, err
	}
	lsn, err := pglogrepl.ParseLSN(c.LSN)
	if err != nil || c.Slot == "" || c.N < 0 {
		return nil, sdk.InvalidArgument("postgres: update cursor %q is damaged", truncate(b))
	}
	c.lsn = lsn
	return &c, nil
}

func (c *updCursor) encode() []byte { return encodeCursor(c) }

// flushLSN is the position the slot may be confirmed to once the cursor is
// checkpointed: every transaction that commits before it is applied.
func (c *updCursor) flushLSN() pglogrepl.LSN { return c.lsn }

// replication returns the slot and publication of the cursor.
func (c *updCursor) replication() Replication {
	return Replication{Slot: c.Slot, Publication: c.Pub, SlotOwned: c.SlotOwned, PublicationOwned: c.PubOwned, LSN: c.LSN}
}

func (c *updCursor) String() string {
	if c.N == 0 {
		return fmt.Sprintf("%s (slot %s)", c.LSN, c.Slot)
	}
	return fmt.Sprintf("%s+%d (slot %s)", c.LSN, c.N, c.Slot)
}
