// Command ferretdemo runs the two MongoDB-compatible servers of `make demo`:
// embedded FerretDB instances (SQLite storage in a temporary directory) on
// free loopback ports, the first seeded with a small shop database. It is a
// demo helper: FerretDB never reaches the dsync binary.
//
//	ferretdemo serve URIFILE   start A and B, seed A, write "A=<uri>" and
//	                           "B=<uri>" lines to URIFILE, serve until
//	                           SIGINT or SIGTERM, then remove the data
//	ferretdemo counts URI...   print the documents and indexes per
//	                           collection of each server, side by side
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Sizes of the seeded shop database: 50,000 documents in all.
const (
	dbName   = "shop"
	users    = 15_000
	products = 5_000
	orders   = 30_000
)

func main() {
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "serve":
		err = serve(os.Args[2])
	case len(os.Args) >= 3 && os.Args[1] == "counts":
		err = counts(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: ferretdemo serve URIFILE | ferretdemo counts URI...")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdemo:", err)
		os.Exit(1)
	}
}

func serve(uriFile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "dsync-demo-ferretdb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var uris []string
	done := make(chan error, 2)
	for _, name := range []string{"a", "b"} {
		if err := os.Mkdir(dir+"/"+name, 0o700); err != nil {
			return err
		}
		f, err := ferretdb.New(&ferretdb.Config{
			Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
			Handler:   "sqlite",
			SQLiteURL: "file:" + dir + "/" + name + "/",
			Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			return fmt.Errorf("start FerretDB: %w", err)
		}
		go func() { done <- f.Run(ctx) }()
		uris = append(uris, f.MongoDBURI())
	}
	start := time.Now()
	if err := seed(ctx, uris[0]); err != nil {
		return fmt.Errorf("seed %s: %w", uris[0], err)
	}
	fmt.Fprintf(os.Stderr, "seeded %s with %d documents in %s\n", uris[0], users+products+orders, time.Since(start).Round(time.Millisecond))
	tmp := uriFile + ".tmp"
	if err := os.WriteFile(tmp, []byte("A="+uris[0]+"\nB="+uris[1]+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, uriFile); err != nil {
		return err
	}
	<-ctx.Done()
	for range 2 {
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

func connect(ctx context.Context, uri string) (*mongo.Client, error) {
	cl, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cl.Ping(ctx, nil)
		if err == nil {
			return cl, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = cl.Disconnect(context.Background())
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	firstNames = []string{"Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger", "Radia", "Zoë", "José", "Yuki", "Amara"}
	lastNames  = []string{"Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen", "Dijkstra", "Perlman", "Müller", "García", "Tanaka", "Okafor"}
	cities     = []string{"Lisbon", "Berlin", "Osaka", "Lagos", "Austin", "Montréal", "Kraków", "Nairobi", "Lima", "Oslo"}
	categories = []string{"books", "garden", "kitchen", "toys", "audio", "outdoor", "office"}
	statuses   = []string{"pending", "paid", "shipped", "delivered", "returned"}
)

// seed fills shop.users, shop.products and shop.orders with related,
// nested documents and creates their secondary indexes.
func seed(ctx context.Context, uri string) error {
	cl, err := connect(ctx, uri)
	if err != nil {
		return err
	}
	defer func() { _ = cl.Disconnect(context.Background()) }()
	db := cl.Database(dbName)
	rng := rand.New(rand.NewPCG(2024, 7))
	epoch := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	day := func(max int) bson.DateTime {
		return bson.NewDateTimeFromTime(epoch.Add(time.Duration(rng.IntN(max*24*3600)) * time.Second))
	}
	userIDs := make([]bson.ObjectID, users)
	docs := make([]any, 0, users)
	for i := range users {
		var id bson.ObjectID
		id[0], id[1], id[9], id[10], id[11] = 0x66, 0x10, byte(i>>16), byte(i>>8), byte(i)
		userIDs[i] = id
		first, last := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
		u := bson.D{
			{Key: "_id", Value: id},
			{Key: "email", Value: fmt.Sprintf("%s.%s.%d@example.com", strings.ToLower(first), strings.ToLower(last), i)},
			{Key: "name", Value: bson.D{{Key: "first", Value: first}, {Key: "last", Value: last}}},
			{Key: "signed_up", Value: day(1000)},
			{Key: "address", Value: bson.D{{Key: "city", Value: cities[rng.IntN(len(cities))]}, {Key: "zip", Value: fmt.Sprintf("%05d", rng.IntN(100000))}}},
			{Key: "tags", Value: bson.A{categories[rng.IntN(len(categories))], categories[rng.IntN(len(categories))]}},
			{Key: "loyalty_points", Value: int32(rng.IntN(5000))},
			{Key: "verified", Value: rng.IntN(4) != 0},
		}
		if rng.IntN(3) == 0 {
			u = append(u, bson.E{Key: "phone", Value: fmt.Sprintf("+351 9%08d", rng.IntN(100000000))})
		}
		docs = append(docs, u)
	}
	if err := insert(ctx, db.Collection("users"), docs); err != nil {
		return err
	}
	docs = docs[:0]
	prices := make([]float64, products)
	for i := range products {
		prices[i] = float64(100+rng.IntN(20000)) / 100
		docs = append(docs, bson.D{
			{Key: "_id", Value: fmt.Sprintf("SKU-%05d", i)},
			{Key: "title", Value: fmt.Sprintf("%s item %d", categories[i%len(categories)], i)},
			{Key: "category", Value: categories[i%len(categories)]},
			{Key: "price", Value: prices[i]},
			{Key: "stock", Value: int64(rng.IntN(1000))},
			{Key: "dimensions", Value: bson.D{{Key: "w", Value: rng.Float64() * 50}, {Key: "h", Value: rng.Float64() * 50}, {Key: "unit", Value: "cm"}}},
			{Key: "added", Value: day(900)},
		})
	}
	if err := insert(ctx, db.Collection("products"), docs); err != nil {
		return err
	}
	docs = docs[:0]
	for i := range orders {
		n := 1 + rng.IntN(4)
		lines := make(bson.A, n)
		total := 0.0
		for j := range lines {
			p, qty := rng.IntN(products), 1+rng.IntN(3)
			total += prices[p] * float64(qty)
			lines[j] = bson.D{{Key: "sku", Value: fmt.Sprintf("SKU-%05d", p)}, {Key: "qty", Value: int32(qty)}, {Key: "price", Value: prices[p]}}
		}
		docs = append(docs, bson.D{
			{Key: "_id", Value: int64(1_000_000 + i)},
			{Key: "user_id", Value: userIDs[rng.IntN(users)]},
			{Key: "created", Value: day(1000)},
			{Key: "status", Value: statuses[rng.IntN(len(statuses))]},
			{Key: "lines", Value: lines},
			{Key: "total", Value: float64(int(total*100)) / 100},
			{Key: "shipping", Value: bson.D{{Key: "city", Value: cities[rng.IntN(len(cities))]}, {Key: "express", Value: rng.IntN(5) == 0}}},
		})
	}
	if err := insert(ctx, db.Collection("orders"), docs); err != nil {
		return err
	}
	for coll, specs := range map[string][]bson.D{
		"users":  {{{Key: "key", Value: bson.D{{Key: "email", Value: int32(1)}}}, {Key: "name", Value: "email_1"}, {Key: "unique", Value: true}}},
		"orders": {{{Key: "key", Value: bson.D{{Key: "user_id", Value: int32(1)}, {Key: "created", Value: int32(-1)}}}, {Key: "name", Value: "user_id_1_created_-1"}}},
	} {
		for _, s := range specs {
			cmd := bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: bson.A{s}}}
			if err := db.RunCommand(ctx, cmd).Err(); err != nil {
				return fmt.Errorf("create index on %s: %w", coll, err)
			}
		}
	}
	return nil
}

func insert(ctx context.Context, coll *mongo.Collection, docs []any) error {
	for start := 0; start < len(docs); start += 1000 {
		if _, err := coll.InsertMany(ctx, docs[start:min(start+1000, len(docs))]); err != nil {
			return fmt.Errorf("insert into %s: %w", coll.Name(), err)
		}
	}
	return nil
}

// counts prints, per collection of every non-system database, the number
// of documents (from collection statistics: a count would scan them) and
// of indexes on each server.
func counts(uris []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	table := map[string][]int64{}   // namespace -> documents per server
	indexes := map[string][]int64{} // namespace -> indexes per server
	for i, uri := range uris {
		cl, err := connect(ctx, uri)
		if err != nil {
			return err
		}
		defer func() { _ = cl.Disconnect(context.Background()) }()
		dbs, err := cl.ListDatabaseNames(ctx, bson.D{})
		if err != nil {
			return err
		}
		for _, d := range dbs {
			if d == "admin" || d == "local" || d == "config" {
				continue
			}
			colls, err := cl.Database(d).ListCollectionNames(ctx, bson.D{})
			if err != nil {
				return err
			}
			for _, c := range colls {
				coll := cl.Database(d).Collection(c)
				n, err := coll.EstimatedDocumentCount(ctx)
				if err != nil {
					return err
				}
				specs, err := coll.Indexes().ListSpecifications(ctx)
				if err != nil {
					return err
				}
				ns := d + "." + c
				if table[ns] == nil {
					table[ns], indexes[ns] = make([]int64, len(uris)), make([]int64, len(uris))
				}
				table[ns][i], indexes[ns][i] = n, int64(len(specs))
			}
		}
	}
	names := make([]string, 0, len(table))
	for ns := range table {
		names = append(names, ns)
	}
	slices.Sort(names)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', tabwriter.AlignRight)
	fmt.Fprint(w, "namespace\t")
	for i := range uris {
		fmt.Fprintf(w, "docs %c\t", 'A'+i)
	}
	for i := range uris {
		fmt.Fprintf(w, "indexes %c\t", 'A'+i)
	}
	fmt.Fprintln(w)
	totals := make([]int64, len(uris))
	for _, ns := range names {
		fmt.Fprintf(w, "%s\t", ns)
		for i, n := range table[ns] {
			fmt.Fprintf(w, "%d\t", n)
			totals[i] += n
		}
		for _, n := range indexes[ns] {
			fmt.Fprintf(w, "%d\t", n)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "total\t")
	for _, n := range totals {
		fmt.Fprintf(w, "%d\t", n)
	}
	fmt.Fprintln(w)
	return w.Flush()
}
