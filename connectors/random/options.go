package random

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/dsyncio/dsync/sdk"
)

// Limits of the options. Documents and pages must fit the 16 MiB BSON limit
// and the 64 MiB gRPC message limit.
const (
	MaxNamespaces = 10_000
	MaxDocs       = 1_000_000_000_000
	MaxSize       = 16 << 20
	MaxPartitions = 1_000_000
	MaxUpdates    = 1_000_000_000_000
	MaxPage       = 1_000_000
	// MaxPlanPartitions bounds the partitions of a plan of every namespace,
	// which the coordinator stores.
	MaxPlanPartitions = 1_000_000
)

// pageBytes bounds a ListData page and an update batch (at least one
// document is always returned).
const pageBytes = 4 << 20

// Options define a generated dataset and how it is served. The zero value of
// Docs, Size, Seed, Updates and Rate is meaningful; DefaultOptions returns the
// defaults of a bare "random://" URL.
type Options struct {
	// Namespaces is the number of namespaces, named random.ns0, random.ns1,
	// ... Default 1.
	Namespaces int
	// Docs is the number of documents of each namespace, with _id 0 to
	// Docs-1. Default 1000.
	Docs int64
	// Size is the size of every document in bytes; documents are never
	// smaller than their fixed fields (163 bytes). Default 1024.
	Size int
	// Seed selects the dataset. Default 1.
	Seed uint64
	// Partitions is the number of copy partitions per namespace (fewer when
	// a namespace has fewer documents). Default 4.
	Partitions int
	// Updates is the number of change events that follow the plan. Default
	// 0.
	Updates int64
	// Rate limits change events per second; 0 means as fast as they are
	// read. Default 0.
	Rate float64
	// Page is the maximum number of documents of a ListData page; a page
	// also stops at 4 MiB. Default 1000.
	Page int
}

// DefaultOptions returns the options of "random://".
func DefaultOptions() Options {
	return Options{
		Namespaces: 1,
		Docs:       1000,
		Size:       1024,
		Seed:       1,
		Partitions: 4,
		Page:       1000,
	}
}

// EnsureDefaults sets the fields whose zero value is invalid (Namespaces,
// Partitions, Page) to their defaults.
func (o *Options) EnsureDefaults() {
	d := DefaultOptions()
	if o.Namespaces == 0 {
		o.Namespaces = d.Namespaces
	}
	if o.Partitions == 0 {
		o.Partitions = d.Partitions
	}
	if o.Page == 0 {
		o.Page = d.Page
	}
}

// Validate reports the first invalid field as an sdk.InvalidArgument error.
func (o Options) Validate() error {
	switch {
	case o.Namespaces < 1 || o.Namespaces > MaxNamespaces:
		return rangeErr("namespaces", o.Namespaces, 1, MaxNamespaces)
	case o.Docs < 0 || o.Docs > MaxDocs:
		return rangeErr("docs", o.Docs, 0, MaxDocs)
	case o.Size < 0 || o.Size > MaxSize:
		return rangeErr("size", o.Size, 0, MaxSize)
	case o.Partitions < 1 || o.Partitions > MaxPartitions:
		return rangeErr("partitions", o.Partitions, 1, MaxPartitions)
	case o.Updates < 0 || o.Updates > MaxUpdates:
		return rangeErr("updates", o.Updates, 0, MaxUpdates)
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return sdk.InvalidArgument("random: rate=%v is invalid: use a number of events per second >= 0 (0 = unlimited)", o.Rate)
	case o.Page < 1 || o.Page > MaxPage:
		return rangeErr("page", o.Page, 1, MaxPage)
	}
	if n := o.planPartitions(); n*int64(o.Namespaces) > MaxPlanPartitions {
		return sdk.InvalidArgument("random: a plan would have %d partitions: make namespaces × partitions at most %d", n*int64(o.Namespaces), MaxPlanPartitions)
	}
	return nil
}

// planPartitions returns the number of partitions of one namespace: one
// (possibly empty) to Partitions, at most one per document.
func (o Options) planPartitions() int64 {
	return max(min(int64(o.Partitions), o.Docs), 1)
}

func rangeErr[T int | int64](name string, v, lo, hi T) error {
	return sdk.InvalidArgument("random: %s=%d is out of range: use a value from %d to %d", name, v, lo, hi)
}

// ID identifies the dataset: the options that define the initial documents.
// Updates and Rate are left out, like the future writes of a database.
func (o Options) ID() string {
	return fmt.Sprintf("random:seed=%d,namespaces=%d,docs=%d,size=%d", o.Seed, o.Namespaces, o.Docs, o.Size)
}

// NamespaceName returns the name of namespace index ns.
func (o Options) NamespaceName(ns int) string { return "random.ns" + strconv.Itoa(ns) }

var optionNames = []string{"namespaces", "docs", "size", "seed", "partitions", "updates", "rate", "page"}

// ParseURL parses a "random://?name=value&..." URL (see the package
// documentation) over DefaultOptions and validates the result.
func ParseURL(raw string) (Options, error) {
	return parseConfig(raw, nil)
}

// parseConfig parses the URL and then the settings, which take the same
// names; a name given in both is an error.
func parseConfig(raw string, settings map[string]string) (Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Options{}, sdk.InvalidArgument("random: cannot parse the URL: %v: use random://?docs=N&...", urlErrCause(err))
	}
	if u.Scheme != "random" {
		return Options{}, sdk.InvalidArgument("random: URL scheme is %q: use random://", u.Scheme)
	}
	if u.User != nil || u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" || u.Fragment != "" {
		return Options{}, sdk.InvalidArgument("random: the URL has a host, path or fragment: write only options, as in random://?docs=N")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Options{}, sdk.InvalidArgument("random: cannot parse the URL options: %v: write them as name=value joined by &", err)
	}
	for k, v := range settings {
		if _, dup := q[k]; dup {
			return Options{}, sdk.InvalidArgument("random: option %q is both in the URL and in the settings: give it once", k)
		}
		q[k] = []string{v}
	}
	o := DefaultOptions()
	// Sorted so that the first error reported does not depend on map order.
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := q[k]
		if len(vs) != 1 {
			return Options{}, sdk.InvalidArgument("random: option %q is given %d times: give it once", k, len(vs))
		}
		if err := o.set(k, vs[0]); err != nil {
			return Options{}, err
		}
	}
	if err := o.Validate(); err != nil {
		return Options{}, err
	}
	return o, nil
}

func (o *Options) set(name, v string) error {
	var err error
	switch name {
	case "namespaces":
		o.Namespaces, err = parseInt[int](name, v)
	case "docs":
		o.Docs, err = parseInt[int64](name, v)
	case "size":
		o.Size, err = parseInt[int](name, v)
	case "seed":
		o.Seed, err = strconv.ParseUint(v, 10, 64)
		if err != nil {
			err = sdk.InvalidArgument("random: seed=%q is not valid: use an integer from 0 to %d", v, uint64(math.MaxUint64))
		}
	case "partitions":
		o.Partitions, err = parseInt[int](name, v)
	case "updates":
		o.Updates, err = parseInt[int64](name, v)
	case "rate":
		o.Rate, err = strconv.ParseFloat(v, 64)
		if err != nil || o.Rate < 0 || math.IsInf(o.Rate, 0) || math.IsNaN(o.Rate) {
			err = sdk.InvalidArgument("random: rate=%q is not valid: use a number of events per second >= 0 (0 = unlimited)", v)
		}
	case "page":
		o.Page, err = parseInt[int](name, v)
	default:
		err = sdk.InvalidArgument("random: unknown option %q: use one of %s", name, strings.Join(optionNames, ", "))
	}
	return err
}

func parseInt[T int | int64](name, v string) (T, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || int64(T(n)) != n {
		return 0, sdk.InvalidArgument("random: %s=%q is not valid: use a non-negative integer", name, v)
	}
	return T(n), nil
}

// urlErrCause drops the URL that *url.Error repeats.
func urlErrCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
