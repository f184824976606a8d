package checkpoint

import (
	"fmt"
	"strconv"
	"strings"
)

// Key prefixes and suffixes; doc.go describes the schema.
const (
	schemaKey    = "dsync/schema"
	flowsPrefix  = "flow/"
	verifyPrefix = "verify/"

	metaSuffix  = "meta"
	stateSuffix = "state"
	partInfix   = "part/"
	updInfix    = "upd/"

	// maxPartitions and maxUpdatePartitions follow from the zero-padded
	// widths of the index in the keys, which keep numeric and key order equal.
	maxPartitions       = 100_000_000
	maxUpdatePartitions = 10_000

	maxIDLen = 128
)

// validID accepts ids made of [A-Za-z0-9._-]. Excluding '/' keeps one flow's
// key range from containing another's; flow ids are hashes and run ids are
// generated, so the restriction costs callers nothing.
func validID(kind, id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: %s id %q must be 1 to %d characters", ErrInvalidArgument, kind, id, maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %s id %q may only contain letters, digits, '.', '_' and '-'", ErrInvalidArgument, kind, id)
		}
	}
	return nil
}

func flowPrefix(id string) []byte { return []byte(flowsPrefix + id + "/") }

// flowEnd is the exclusive upper bound of a flow's keys: '0' follows '/'.
func flowEnd(id string) []byte { return []byte(flowsPrefix + id + "0") }

func metaKey(id string) []byte  { return []byte(flowsPrefix + id + "/" + metaSuffix) }
func stateKey(id string) []byte { return []byte(flowsPrefix + id + "/" + stateSuffix) }

func partPrefix(id string) []byte { return []byte(flowsPrefix + id + "/" + partInfix) }
func updPrefix(id string) []byte  { return []byte(flowsPrefix + id + "/" + updInfix) }

func partKey(id string, idx int) []byte {
	return fmt.Appendf(nil, "%s%s/%s%08d", flowsPrefix, id, partInfix, idx)
}

func updKey(id string, idx int) []byte {
	return fmt.Appendf(nil, "%s%s/%s%04d", flowsPrefix, id, updInfix, idx)
}

// indexFromKey parses the index that follows prefix in key.
func indexFromKey(key, prefix []byte) (int, error) {
	s, ok := strings.CutPrefix(string(key), string(prefix))
	idx, err := strconv.Atoi(s)
	if !ok || err != nil || idx < 0 {
		return 0, fmt.Errorf("%w: malformed key %q", ErrCorrupt, key)
	}
	return idx, nil
}

// flowIDFromKey returns the flow id of a key under flowsPrefix.
func flowIDFromKey(key []byte) (string, error) {
	rest, ok := strings.CutPrefix(string(key), flowsPrefix)
	if !ok {
		return "", fmt.Errorf("%w: malformed key %q", ErrCorrupt, key)
	}
	id, _, ok := strings.Cut(rest, "/")
	if !ok || id == "" {
		return "", fmt.Errorf("%w: malformed key %q", ErrCorrupt, key)
	}
	return id, nil
}

func verifyRunPrefix(runID string) []byte { return []byte(verifyPrefix + runID + "/") }
func verifyRunEnd(runID string) []byte    { return []byte(verifyPrefix + runID + "0") }

func verifyKey(runID, key string) []byte { return []byte(verifyPrefix + runID + "/" + key) }

// prefixEnd returns the smallest key greater than every key with the given
// prefix, or nil when there is none (a prefix of 0xff bytes).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
