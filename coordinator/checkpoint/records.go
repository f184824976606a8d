package checkpoint

import (
	"encoding/json"
	"fmt"
	"time"
)

// The record types are the on-disk encoding, kept apart from the API types so
// that changing the API cannot silently change the format. Values are JSON
// objects: decoding ignores unknown fields, so an older dsync reads what a
// newer one wrote as long as new fields are optional. Renaming or retyping a
// field needs a schema migration.

// flowRecord is stored under flow/<id>/meta. It changes only with the phase.
type flowRecord struct {
	Source          string    `json:"source"`
	Sink            string    `json:"sink"`
	Mode            string    `json:"mode"`
	Options         []byte    `json:"options,omitempty"`
	DsyncVersion    string    `json:"dsync_version"`
	ProtocolVersion int       `json:"protocol_version"`
	CreatedAt       time.Time `json:"created_at"`
	Phase           string    `json:"phase"`
}

// stateRecord is stored under flow/<id>/state and rewritten by every
// checkpoint; it is separate from flowRecord to keep that write small.
type stateRecord struct {
	UpdatedAt time.Time `json:"updated_at"`
	// PartsLeft counts partitions not yet done; CopyDone is PartsLeft == 0.
	PartsLeft int `json:"parts_left"`
}

// partRecord is stored under flow/<id>/part/<index>.
type partRecord struct {
	Namespace      string `json:"namespace"`
	SinkNamespace  string `json:"sink_namespace,omitempty"`
	Definition     []byte `json:"definition,omitempty"`
	EstimatedCount uint64 `json:"estimated_count,omitempty"`
	Cursor         []byte `json:"cursor,omitempty"`
	Seq            uint64 `json:"seq,omitempty"`
	Done           bool   `json:"done,omitempty"`
	Docs           uint64 `json:"docs,omitempty"`
	Bytes          uint64 `json:"bytes,omitempty"`
}

// updRecord is stored under flow/<id>/upd/<index>.
type updRecord struct {
	Namespaces []string  `json:"namespaces,omitempty"`
	Cursor     []byte    `json:"cursor,omitempty"`
	Seq        uint64    `json:"seq,omitempty"`
	Events     uint64    `json:"events,omitempty"`
	SourceTime time.Time `json:"source_time,omitzero"`
}

// encode can only fail on a time outside the years 0-9999, which JSON cannot
// represent: that comes from the caller.
func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	return b, nil
}

func decode(key, value []byte, v any) error {
	if err := json.Unmarshal(value, v); err != nil {
		return fmt.Errorf("%w: key %q: %v", ErrCorrupt, key, err)
	}
	return nil
}

// normCursor stores an empty cursor as nil, which means "from the start".
func normCursor(c []byte) []byte {
	if len(c) == 0 {
		return nil
	}
	return c
}
