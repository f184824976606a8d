// Package builtin lists the connectors and transforms that ship inside the
// dsync binary. Each is served by the binary re-executed as a plugin
// (`dsync plugin serve connector <scheme>`), behind the same gRPC protocol as
// third-party plugins.
package builtin

import (
	"sort"

	"github.com/dsyncio/dsync/connectors/mongodb"
	"github.com/dsyncio/dsync/connectors/null"
	"github.com/dsyncio/dsync/connectors/postgres"
	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/internal/spi"
	"github.com/dsyncio/dsync/transforms/filter"
	"github.com/dsyncio/dsync/transforms/mask"
	"github.com/dsyncio/dsync/transforms/namespace"
	"github.com/dsyncio/dsync/transforms/project"
	"github.com/dsyncio/dsync/transforms/rename"
	"github.com/dsyncio/dsync/transforms/set"
)

// Connector describes a built-in connector.
type Connector struct {
	// Schemes are the URL schemes that select it.
	Schemes []string
	// Summary is a one-line description.
	Summary string
	// New returns a fresh, unconfigured connector.
	New func() spi.Connector
}

// Transform describes a built-in transform.
type Transform struct {
	Name    string
	Summary string
	New     func() spi.Transform
}

var connectors = []Connector{
	{Schemes: []string{"random"}, Summary: "deterministic generated documents and change events (tests, benchmarks)", New: func() spi.Connector { return random.New() }},
	{Schemes: []string{"mongodb", "mongodb+srv"}, Summary: "MongoDB (and wire-compatible servers): type-aware partitions, change streams or oplog CDC, bulk upsert sink", New: func() spi.Connector { return mongodb.New() }},
	{Schemes: []string{"null"}, Summary: "discards and counts everything written (benchmarks, failure injection)", New: func() spi.Connector { return null.New() }},
	{Schemes: []string{"postgres", "postgresql"}, Summary: "PostgreSQL tables: keyset copy, logical-replication CDC (pgoutput), upsert sink", New: func() spi.Connector { return postgres.New() }},
}

var transforms = []Transform{
	{Name: "drop", Summary: "remove fields: drop:password,address.street", New: project.NewDrop},
	{Name: "filter", Summary: `pass only documents matching a MongoDB-style query: filter:{"status":"active"}`, New: filter.New},
	{Name: "keep", Summary: "keep only some fields (and _id): keep:name,email", New: project.NewKeep},
	{Name: "mask", Summary: "hash or redact field values: mask:email=hash,ssn=redact;key-env=MASK_KEY", New: mask.New},
	{Name: "namespace", Summary: "rename namespaces: namespace:shop.users=staging.customers or namespace:shop=staging", New: namespace.New},
	{Name: "rename", Summary: "rename or move fields: rename:name=fullName,addr.zip=address.postcode", New: rename.New},
	{Name: "set", Summary: `add constant or computed fields: set:env="staging",source=$namespace,syncedAt=$now`, New: set.New},
}

// Connectors returns the built-in connectors.
func Connectors() []Connector { return connectors }

// Transforms returns the built-in transforms.
func Transforms() []Transform { return transforms }

// ConnectorSchemes returns every scheme served by a built-in connector,
// sorted.
func ConnectorSchemes() []string {
	var out []string
	for _, c := range connectors {
		out = append(out, c.Schemes...)
	}
	sort.Strings(out)
	return out
}

// TransformNames returns the names of the built-in transforms, sorted.
func TransformNames() []string {
	var out []string
	for _, t := range transforms {
		out = append(out, t.Name)
	}
	sort.Strings(out)
	return out
}

// LookupConnector returns the built-in connector for a scheme.
func LookupConnector(scheme string) (Connector, bool) {
	for _, c := range connectors {
		for _, s := range c.Schemes {
			if s == scheme {
				return c, true
			}
		}
	}
	return Connector{}, false
}

// LookupTransform returns the built-in transform with a name.
func LookupTransform(name string) (Transform, bool) {
	for _, t := range transforms {
		if t.Name == name {
			return t, true
		}
	}
	return Transform{}, false
}
