package transforms_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/builtin"
	"github.com/dsyncio/dsync/connectors/random"
)

// BenchmarkBuiltins measures each built-in transform in process on pages of
// 1000 random:// documents of 1 KiB.
func BenchmarkBuiltins(b *testing.B) {
	o := random.DefaultOptions()
	docs := make([]bson.Raw, 0, 1000)
	for i := range int64(1000) {
		docs = append(docs, o.Doc(0, i))
	}
	for _, s := range []struct{ name, spec string }{
		{"namespace", "random.ns0=staging.users"},
		{"rename", "tag=label,sub.a=sub.alpha"},
		{"drop", "arr,sub.b"},
		{"keep", "v,f,sub.a"},
		{"mask", "f=hash,s=redact"},
		{"set", `env="staging",origin=$namespace`},
		{"filter", `{"f":{"$gte":500},"tag":{"$in":["t1","t2"]}}`},
	} {
		bt, _ := builtin.LookupTransform(s.name)
		tr := bt.New()
		if err := tr.Configure(context.Background(), s.spec); err != nil {
			b.Fatal(err)
		}
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(o.DocSize()) * int64(len(docs)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.TransformData(context.Background(), "random.ns0", docs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
