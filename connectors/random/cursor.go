package random

import (
	"strconv"
	"strings"

	"github.com/dsyncio/dsync/sdk"
)

// Cursors are short ASCII strings with a kind and version prefix, readable
// in the checkpoint store and durable: they only hold positions.
//
//	partition   "p1:<ns>:<lo>:<hi>"  documents lo <= _id < hi of namespace ns
//	ListData    "d1:<next>"          the next document index
//	updates     "u1:<seq>"           the next event position
const (
	prefixPartition = "p1:"
	prefixData      = "d1:"
	prefixUpdates   = "u1:"
)

type partitionCursor struct {
	ns     int
	lo, hi int64
}

func (p partitionCursor) encode() []byte {
	b := []byte(prefixPartition)
	b = strconv.AppendInt(b, int64(p.ns), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, p.lo, 10)
	b = append(b, ':')
	return strconv.AppendInt(b, p.hi, 10)
}

func (o Options) decodePartition(b []byte) (partitionCursor, error) {
	s, ok := strings.CutPrefix(string(b), prefixPartition)
	parts := strings.Split(s, ":")
	if !ok || len(parts) != 3 {
		return partitionCursor{}, o.badCursor("partition", b)
	}
	ns, err1 := strconv.Atoi(parts[0])
	lo, err2 := strconv.ParseInt(parts[1], 10, 64)
	hi, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || ns < 0 || ns >= o.Namespaces || lo < 0 || lo > hi || hi > o.Docs {
		return partitionCursor{}, o.badCursor("partition", b)
	}
	return partitionCursor{ns: ns, lo: lo, hi: hi}, nil
}

func encodePos(prefix string, n int64) []byte {
	return strconv.AppendInt([]byte(prefix), n, 10)
}

// decodePos decodes a ListData or updates cursor and checks lo <= n <= hi.
// An empty cursor is lo.
func (o Options) decodePos(prefix, what string, b []byte, lo, hi int64) (int64, error) {
	if len(b) == 0 {
		return lo, nil
	}
	s, ok := strings.CutPrefix(string(b), prefix)
	if !ok {
		return 0, o.badCursor(what, b)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, o.badCursor(what, b)
	}
	return n, nil
}

func (o Options) badCursor(what string, b []byte) error {
	const maxShown = 64
	if len(b) > maxShown {
		b = b[:maxShown]
	}
	return sdk.InvalidArgument("random: %s cursor %q does not belong to dataset %s: use the options the flow was started with", what, b, o.ID())
}
