// Package docdir is a dsync source and sink connector that keeps one BSON
// file per document:
//
//	docdir:///absolute/path/to/dir?page=500
//
// Namespace ns is the directory <dir>/<ns>; the document with _id v is the
// file <hex of v's BSON type and value>.bson in it, so int32 1, int64 1 and
// "1" are three different ids. It is a minimal third-party connector built
// on package sdk only:
//
//   - Durable keyset cursors: a page cursor is the name of the last file
//     returned; file names sort in a stable order, so a cursor stays valid
//     after any restart, and documents written after it are still read.
//   - Idempotent, durable writes: every document is written to a temporary
//     file, synced and renamed over the old one, and the directory is synced
//     before the call returns; writing the same batch twice gives the same
//     files.
//   - GetByIDs (for dsync verify) reads files by name.
//   - No change stream: a plan with updates fails with sdk.Unimplemented.
package docdir

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// DefaultPage is the number of documents per ListData page.
const DefaultPage = 500

const suffix = ".bson"

// Connector is the docdir connector. Configure it before anything else;
// it is then safe for concurrent use.
type Connector struct {
	dir  string
	page int
}

var (
	_ sdk.Source   = (*Connector)(nil)
	_ sdk.Sink     = (*Connector)(nil)
	_ sdk.IDGetter = (*Connector)(nil)
)

// New returns an unconfigured connector.
func New() *Connector { return &Connector{} }

// Configure parses the URL. The directory need not exist: the first write
// creates it.
func (c *Connector) Configure(_ context.Context, cfg sdk.Config) error {
	const usage = "want docdir:///absolute/path/to/dir[?page=N]"
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		return sdk.InvalidArgument("empty connection string: %s", usage)
	case err != nil:
		return sdk.InvalidArgument("not a URL: %s", usage)
	case u.Scheme != "docdir":
		return sdk.InvalidArgument("the scheme is %q, not docdir: %s", u.Scheme, usage)
	case u.Host != "":
		return sdk.InvalidArgument("docdir URLs have no host (%q): %s", u.Host, usage)
	case !filepath.IsAbs(u.Path):
		return sdk.InvalidArgument("the directory must be an absolute path: %s", usage)
	}
	page := DefaultPage
	for k, v := range u.Query() {
		if k != "page" {
			return sdk.InvalidArgument("unknown option %q: docdir takes page=N", k)
		}
		n, err := strconv.Atoi(v[0])
		if len(v) != 1 || err != nil || n < 1 || n > 100000 {
			return sdk.InvalidArgument("option page=%q: want one whole number from 1 to 100000", v[0])
		}
		page = n
	}
	if fi, err := os.Stat(u.Path); err == nil && !fi.IsDir() {
		return sdk.InvalidArgument("%s is not a directory", u.Path)
	}
	c.dir, c.page = filepath.Clean(u.Path), page
	return nil
}

// Info describes the dataset: the same directory is the same dataset.
func (c *Connector) Info(context.Context) (sdk.Info, error) {
	return sdk.Info{
		ID:      "docdir:" + c.dir,
		DBType:  "docdir",
		Version: "0.1.0",
		Source:  &sdk.SourceCapabilities{MultiNamespacePlan: true, DefaultPlan: true, GetByIDs: true},
		Sink:    &sdk.SinkCapabilities{},
	}, nil
}

// nsDir returns the directory of a namespace.
func (c *Connector) nsDir(ns string) (string, error) {
	if ns == "" || strings.HasPrefix(ns, ".") || strings.ContainsAny(ns, "/\\\x00") {
		return "", sdk.InvalidArgument("namespace %q cannot name a directory: it must not be empty, start with '.' or hold '/', '\\' or NUL", ns)
	}
	return filepath.Join(c.dir, ns), nil
}

// fileName is the file of the document with id v.
func fileName(v bson.RawValue) string {
	return hex.EncodeToString(append([]byte{byte(v.Type)}, v.Value...)) + suffix
}

// names lists the document files of a namespace, sorted.
func names(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, sdk.Retryable(err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, suffix) && !strings.HasPrefix(n, ".") {
			out = append(out, n)
		}
	}
	return out, nil // os.ReadDir sorts by name
}

// NamespaceMetadata counts the files of a namespace.
func (c *Connector) NamespaceMetadata(_ context.Context, ns string) (sdk.NamespaceMetadata, error) {
	dir, err := c.nsDir(ns)
	if err != nil {
		return sdk.NamespaceMetadata{}, err
	}
	ns2, err := names(dir)
	if err != nil {
		return sdk.NamespaceMetadata{}, err
	}
	md := sdk.NamespaceMetadata{Count: uint64(len(ns2))}
	for _, n := range ns2 {
		if fi, err := os.Stat(filepath.Join(dir, n)); err == nil {
			md.SizeBytes += uint64(fi.Size())
		}
	}
	return md, nil
}

// GeneratePlan returns one partition per namespace: keyset cursors make
// every page resumable, so there is no need to split further here.
func (c *Connector) GeneratePlan(ctx context.Context, req sdk.PlanRequest) (sdk.Plan, error) {
	if req.Updates {
		return sdk.Plan{}, sdk.Unimplemented("change streams (docdir keeps no change history: use --mode initial)")
	}
	nss := req.Namespaces
	if len(nss) == 0 {
		entries, err := os.ReadDir(c.dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return sdk.Plan{}, sdk.Retryable(err)
		}
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				nss = append(nss, e.Name())
			}
		}
	}
	var plan sdk.Plan
	if !req.InitialSync {
		return plan, nil
	}
	for i, ns := range nss {
		if slices.Contains(nss[:i], ns) {
			return sdk.Plan{}, sdk.InvalidArgument("namespace %q is requested twice", ns)
		}
		md, err := c.NamespaceMetadata(ctx, ns)
		if err != nil {
			return sdk.Plan{}, err
		}
		dir, _ := c.nsDir(ns)
		if _, err := os.Stat(dir); err != nil {
			return sdk.Plan{}, sdk.InvalidArgument("namespace %q does not exist (no directory %s)", ns, dir)
		}
		plan.Partitions = append(plan.Partitions, sdk.Partition{Namespace: ns, EstimatedCount: md.Count})
	}
	return plan, nil
}

// ListData returns the documents whose file names follow the cursor.
func (c *Connector) ListData(ctx context.Context, p sdk.Partition, cursor []byte) (sdk.Page, error) {
	dir, err := c.nsDir(p.Namespace)
	if err != nil {
		return sdk.Page{}, err
	}
	all, err := names(dir)
	if err != nil {
		return sdk.Page{}, err
	}
	start := sort.SearchStrings(all, string(cursor))
	if start < len(all) && all[start] == string(cursor) {
		start++ // the cursor is the last file returned
	}
	end := min(start+c.page, len(all))
	var page sdk.Page
	for _, n := range all[start:end] {
		if err := ctx.Err(); err != nil {
			return sdk.Page{}, err
		}
		doc, err := os.ReadFile(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the listing
		}
		if err != nil {
			return sdk.Page{}, sdk.Retryable(err)
		}
		page.Docs = append(page.Docs, doc)
	}
	if end < len(all) {
		page.NextCursor = []byte(all[end-1])
	}
	return page, nil
}

// GetByIDs reads the files of the ids, nil where there is none.
func (c *Connector) GetByIDs(_ context.Context, ns string, ids []bson.RawValue) ([]bson.Raw, error) {
	dir, err := c.nsDir(ns)
	if err != nil {
		return nil, err
	}
	out := make([]bson.Raw, len(ids))
	for i, id := range ids {
		doc, err := os.ReadFile(filepath.Join(dir, fileName(id)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, sdk.Retryable(err)
		default:
			out[i] = doc
		}
	}
	return out, nil
}

// WriteData writes each document over its file, then syncs the directory.
func (c *Connector) WriteData(ctx context.Context, ns string, docs []bson.Raw) error {
	dir, err := c.nsDir(ns)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sdk.Retryable(err)
	}
	for i, doc := range docs {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, err := doc.LookupErr("_id")
		if err != nil {
			return sdk.InvalidArgument("document %d of namespace %q has no _id", i, ns)
		}
		if err := writeFile(dir, fileName(id), doc); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// WriteUpdates applies the changes in order, then syncs the directory.
func (c *Connector) WriteUpdates(ctx context.Context, ns string, ups []sdk.Update) error {
	dir, err := c.nsDir(ns)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sdk.Retryable(err)
	}
	for i, u := range ups {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := fileName(u.ID)
		switch u.Type {
		case sdk.UpdateInsert, sdk.UpdateReplace:
			err = writeFile(dir, name, u.Doc)
		case sdk.UpdateDelete:
			if err = os.Remove(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		case sdk.UpdatePartial:
			err = c.applyPartial(dir, name, u)
		default:
			err = sdk.InvalidArgument("update %d has unknown type %d", i, u.Type)
		}
		if err != nil {
			return fmt.Errorf("update %d (%s of _id %s): %w", i, u.Type, u.ID, err)
		}
	}
	return syncDir(dir)
}

// applyPartial sets and unsets dotted paths of a stored document; a
// missing document is created from its _id.
func (c *Connector) applyPartial(dir, name string, u sdk.Update) error {
	doc := bson.D{{Key: "_id", Value: u.ID}}
	cur, err := os.ReadFile(filepath.Join(dir, name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return sdk.Retryable(err)
	default:
		doc = nil
		if err := bson.Unmarshal(cur, &doc); err != nil {
			return sdk.Fatal(fmt.Errorf("stored document %s: %w", name, err))
		}
	}
	if len(u.Doc) > 0 {
		elems, err := u.Doc.Elements()
		if err != nil {
			return sdk.InvalidArgument("fields to set: %v", err)
		}
		for _, e := range elems {
			if path := strings.Split(e.Key(), "."); path[0] != "_id" {
				doc = setPath(doc, path, e.Value())
			}
		}
	}
	for _, f := range u.Unset {
		if path := strings.Split(f, "."); path[0] != "_id" {
			doc = unsetPath(doc, path)
		}
	}
	b, err := bson.Marshal(doc)
	if err != nil {
		return sdk.Fatal(err)
	}
	return writeFile(dir, name, b)
}

// setPath sets a dotted path in d. Missing documents on the way are
// created, and a value on the way that is not a document is replaced by
// one, so that replaying changes from an earlier position converges.
func setPath(d bson.D, path []string, v any) bson.D {
	for i := range d {
		if d[i].Key != path[0] {
			continue
		}
		if len(path) == 1 {
			d[i].Value = v
		} else {
			sub, _ := d[i].Value.(bson.D)
			d[i].Value = setPath(sub, path[1:], v)
		}
		return d
	}
	if len(path) == 1 {
		return append(d, bson.E{Key: path[0], Value: v})
	}
	return append(d, bson.E{Key: path[0], Value: setPath(nil, path[1:], v)})
}

// unsetPath removes a dotted path from d.
func unsetPath(d bson.D, path []string) bson.D {
	for i := range d {
		if d[i].Key != path[0] {
			continue
		}
		if len(path) == 1 {
			return append(d[:i], d[i+1:]...)
		}
		if sub, ok := d[i].Value.(bson.D); ok {
			d[i].Value = unsetPath(sub, path[1:])
		}
		return d
	}
	return d
}

// writeFile replaces dir/name with data, durably: a temporary file is
// written, synced and renamed over it (the caller syncs the directory).
func writeFile(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return sdk.Retryable(err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return sdk.Retryable(err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return sdk.Retryable(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return sdk.Retryable(err)
	}
	return nil
}
