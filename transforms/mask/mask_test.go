package mask_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/sdk"
	"github.com/dsyncio/dsync/transforms/internal/transformtest"
	"github.com/dsyncio/dsync/transforms/mask"
)

type up = transformtest.Update

const (
	ins  = sdk.UpdateInsert
	rep  = sdk.UpdateReplace
	del  = sdk.UpdateDelete
	part = sdk.UpdatePartial
)

// sum is the documented hash: HMAC-SHA256 over a string's UTF-8 bytes, or
// over the type byte and BSON bytes of another value, in lowercase hex.
func sum(key string, b ...byte) string {
	h := hmac.New(sha256.New, []byte(key))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func q(s string) string { return `"` + s + `"` }

func TestDocuments(t *testing.T) {
	hEmail := q(sum(mask.DefaultKey, []byte("a@b.c")...))
	hFive := q(sum(mask.DefaultKey, 0x10, 5, 0, 0, 0)) // int32 5
	hX := q(sum(mask.DefaultKey, 'x'))
	hY := q(sum(mask.DefaultKey, 'y'))
	hTrue := q(sum(mask.DefaultKey, 0x08, 1))
	cases := []struct{ name, spec, in, want string }{
		{"hash string", "email=hash", `{"_id":1,"email":"a@b.c","n":1}`, `{"_id":1,"email":` + hEmail + `,"n":1}`},
		{"hash int32", "n=hash", `{"_id":1,"n":5}`, `{"_id":1,"n":` + hFive + `}`},
		{"hash keeps null and missing", "a=hash,b=hash", `{"_id":1,"a":null}`, `{"_id":1,"a":null}`},
		{"hash document leaf by leaf", "a=hash", `{"_id":1,"a":{"x":"x","l":["y",true]}}`, `{"_id":1,"a":{"x":` + hX + `,"l":[` + hY + `,` + hTrue + `]}}`},
		{"hash in arrays of documents", "c.email=hash", `{"_id":1,"c":[{"email":"a@b.c"},"x",{"o":1}]}`, `{"_id":1,"c":[{"email":` + hEmail + `},"x",{"o":1}]}`},
		{"redact any value", "a=redact,b=redact,c=redact", `{"_id":1,"a":"s","b":{"x":1},"c":null}`, `{"_id":1,"a":"REDACTED","b":"REDACTED","c":"REDACTED"}`},
		{"null", "a=null,b.c=null", `{"_id":1,"a":[1],"b":{"c":2,"d":3}}`, `{"_id":1,"a":null,"b":{"c":null,"d":3}}`},
		{"with a key", "email=hash;key=s3cret", `{"_id":1,"email":"a@b.c"}`, `{"_id":1,"email":` + q(sum("s3cret", []byte("a@b.c")...)) + `}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := transformtest.Configured(t, mask.New(), c.spec)
			got := transformtest.JSON(transformtest.One(t, tr, transformtest.Doc(t, c.in)))
			if want := transformtest.JSON(transformtest.Doc(t, c.want)); got != want {
				t.Errorf("mask:%s of %s\n got %s\nwant %s", c.spec, c.in, got, want)
			}
			for _, typ := range []sdk.UpdateType{ins, rep} {
				ups, err := transformtest.Updates(t, tr, up{Type: typ, ID: 1, Doc: c.in})
				if err != nil {
					t.Fatal(err)
				}
				transformtest.SameUpdates(t, ups, []up{{Type: typ, ID: 1, Doc: c.want}})
			}
		})
	}
}

func TestKeyFromEnvironment(t *testing.T) {
	t.Setenv("DSYNC_TEST_MASK_KEY", "from-env")
	tr := transformtest.Configured(t, mask.New(), "email=hash;key-env=DSYNC_TEST_MASK_KEY")
	got := transformtest.JSON(transformtest.One(t, tr, transformtest.Doc(t, `{"_id":1,"email":"a@b.c"}`)))
	want := transformtest.JSON(transformtest.Doc(t, `{"_id":1,"email":`+q(sum("from-env", []byte("a@b.c")...))+`}`))
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestUpdates(t *testing.T) {
	const spec = "email=hash,ssn=redact,addr.zip=null,contacts.email=hash"
	hEmail := q(sum(mask.DefaultKey, []byte("a@b.c")...))
	cases := []struct {
		name string
		in   up
		want []up
	}{
		{"delete passes", up{Type: del, ID: 1}, []up{{Type: del, ID: 1}}},
		{"set hashed and other", up{Type: part, ID: 1, Doc: `{"email":"a@b.c","x":1}`}, []up{{Type: part, ID: 1, Doc: `{"email":` + hEmail + `,"x":1}`}}},
		{"set inside hashed", up{Type: part, ID: 1, Doc: `{"email.work":"a@b.c"}`}, []up{{Type: part, ID: 1, Doc: `{"email.work":` + hEmail + `}`}}},
		{"set redacted", up{Type: part, ID: 1, Doc: `{"ssn":"123"}`}, []up{{Type: part, ID: 1, Doc: `{"ssn":"REDACTED"}`}}},
		{"set inside redacted", up{Type: part, ID: 1, Doc: `{"ssn.a":"1","ssn.b":"2"}`}, []up{{Type: part, ID: 1, Doc: `{"ssn":"REDACTED"}`}}},
		{"unsets", up{Type: part, ID: 1, Unset: []string{"ssn", "ssn.a", "email.work", "x"}}, []up{{Type: part, ID: 1, Unset: []string{"ssn", "email.work", "x"}}}},
		{"unset inside redacted only", up{Type: part, ID: 1, Unset: []string{"ssn.a"}}, nil},
		{"set above", up{Type: part, ID: 1, Doc: `{"addr":{"zip":"123","city":"c"}}`}, []up{{Type: part, ID: 1, Doc: `{"addr":{"zip":null,"city":"c"}}`}}},
		{"array element", up{Type: part, ID: 1, Doc: `{"contacts.2.email":"a@b.c","contacts.2":{"email":"a@b.c"}}`},
			[]up{{Type: part, ID: 1, Doc: `{"contacts.2.email":` + hEmail + `,"contacts.2":{"email":` + hEmail + `}}`}}},
		{"whole array", up{Type: part, ID: 1, Doc: `{"contacts":[{"email":"a@b.c","n":1}]}`}, []up{{Type: part, ID: 1, Doc: `{"contacts":[{"email":` + hEmail + `,"n":1}]}`}}},
	}
	tr := transformtest.Configured(t, mask.New(), spec)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := transformtest.Updates(t, tr, c.in)
			if err != nil {
				t.Fatal(err)
			}
			transformtest.SameUpdates(t, got, c.want)
		})
	}
}

func TestSpecErrors(t *testing.T) {
	cases := []struct{ spec, want string }{
		{"", "mask: no fields given: write mask:FIELD=hash|redact|null"},
		{";key=x", "mask: no fields given"},
		{"email", `mask: entry "email" has no '=': write FIELD=hash, FIELD=redact or FIELD=null`},
		{"email=md5", `mask: entry "email=md5": unknown method "md5": use hash, redact or null`},
		{"_id=hash", `mask: entry "_id=hash": _id cannot be masked`},
		{"a=hash,a.b=redact", `mask: "a.b" overlaps "a"`},
		{"a=hash;foo=1", `mask: unknown option "foo" after ';'`},
		{"a=hash;key", `mask: an option after ';' has no '='`},
		{"a=hash;key=", "mask: key= is empty"},
		{"a=hash;key-env=", "mask: key-env= names no variable"},
		{"a=hash;key-env=DSYNC_TEST_UNSET_VARIABLE", "mask: key-env: environment variable DSYNC_TEST_UNSET_VARIABLE is not set or empty"},
		{"a=hash;key=x;key-env=Y", "mask: give the key once"},
	}
	for _, c := range cases {
		err := mask.New().Configure(context.Background(), c.spec)
		if err == nil || sdk.KindOf(err) != sdk.KindInvalidArgument || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Configure(%q) = %v (kind %v), want an invalid argument starting %q", c.spec, err, sdk.KindOf(err), c.want)
		}
	}
}

func TestCDCAgreesWithCopy(t *testing.T) {
	o := random.DefaultOptions()
	o.Namespaces, o.Docs, o.Size, o.Updates = 2, 300, 200, 3000
	transformtest.CheckCDC(t, transformtest.Configured(t, mask.New(), "f=hash,tag=redact,sub.a=hash,meta=null,arr=hash;key=k"), o, false, nil)
}
