package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// flowOptions are the options that define a flow: its id is their hash, and
// they are stored with the flow to explain a change. Tuning options are not
// part of it, so they may change between runs.
type flowOptions struct {
	Source     string   `json:"source"`
	Sink       string   `json:"sink"`
	Namespaces []string `json:"namespaces"`
	Transforms []string `json:"transforms"`
	Mode       string   `json:"mode"`
}

func newFlowOptions(sourceID, sinkID string, m NamespaceMap, transformSpecs []string, mode Mode) flowOptions {
	return flowOptions{
		Source:     sourceID,
		Sink:       sinkID,
		Namespaces: m.Entries(),
		Transforms: append([]string{}, transformSpecs...),
		Mode:       string(mode),
	}
}

// canonical returns the options as JSON with a fixed field order and no
// nulls, so equal options always hash equally.
func (o flowOptions) canonical() []byte {
	if o.Namespaces == nil {
		o.Namespaces = []string{}
	}
	if o.Transforms == nil {
		o.Transforms = []string{}
	}
	b, err := json.Marshal(o)
	if err != nil {
		panic(fmt.Sprintf("coordinator: encode flow options: %v", err)) // strings only: cannot fail
	}
	return b
}

func (o flowOptions) id() string {
	sum := sha256.Sum256(o.canonical())
	return hex.EncodeToString(sum[:8])
}

// FlowID returns the id of the flow defined by the source and sink dataset
// ids (spi.Info.ID), the namespace mapping, the transform specs in order and
// the mode: 16 hex digits of the SHA-256 of their canonical JSON. An empty
// mode means full.
func FlowID(sourceID, sinkID string, m NamespaceMap, transformSpecs []string, mode Mode) string {
	if mode == "" {
		mode = ModeFull
	}
	return newFlowOptions(sourceID, sinkID, m, transformSpecs, mode).id()
}

func decodeFlowOptions(b []byte) (flowOptions, bool) {
	var o flowOptions
	if err := json.Unmarshal(b, &o); err != nil || o.Source == "" || o.Sink == "" {
		return flowOptions{}, false
	}
	return o, true
}

func (o flowOptions) samePair(p flowOptions) bool { return o.Source == p.Source && o.Sink == p.Sink }

// changes describes how o differs from old, one phrase per option.
func (o flowOptions) changes(old flowOptions) []string {
	var out []string
	list := func(s []string, none string) string {
		if len(s) == 0 {
			return none
		}
		return strconv.Quote(strings.Join(s, ","))
	}
	if !slices.Equal(o.Namespaces, old.Namespaces) {
		out = append(out, fmt.Sprintf("namespace mapping changed from %s to %s",
			list(old.Namespaces, "(all namespaces)"), list(o.Namespaces, "(all namespaces)")))
	}
	if !slices.Equal(o.Transforms, old.Transforms) {
		out = append(out, fmt.Sprintf("transforms changed from %s to %s",
			list(old.Transforms, "(none)"), list(o.Transforms, "(none)")))
	}
	if o.Mode != old.Mode {
		out = append(out, fmt.Sprintf("mode changed from %s to %s", old.Mode, o.Mode))
	}
	return out
}
