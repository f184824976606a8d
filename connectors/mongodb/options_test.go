package mongodb

import (
	"context"
	"strings"
	"testing"

	"github.com/dsyncio/dsync/sdk"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	const pw = "s3cr%40t-Pass"
	tests := []struct {
		name, url string
		settings  map[string]string
		// want* are checked when wantErr is empty.
		wantErr    string
		wantDriver string
		wantHosts  string
		wantOpts   Options
	}{
		{
			name:       "plain",
			url:        "mongodb://db1.example.com/",
			wantDriver: "mongodb://db1.example.com/",
			wantHosts:  "db1.example.com:27017",
		},
		{
			name:       "credentials, hosts sorted, driver options kept, dsync options removed",
			url:        "mongodb://app:" + pw + "@DB2.example.com:27018,db1.example.com/admin?replicaSet=rs0&cdc=oplog&readPreference=secondaryPreferred&partitionDocs=500&w=majority&pageDocs=10&pageBytes=4096&bulkSize=7&partitionBytes=1024",
			wantDriver: "mongodb://app:" + pw + "@DB2.example.com:27018,db1.example.com/admin?replicaSet=rs0&readPreference=secondaryPreferred&w=majority",
			wantHosts:  "db1.example.com:27017,db2.example.com:27018",
			wantOpts:   Options{CDC: CDCOplog, PartitionDocs: 500, PartitionBytes: 1024, PageDocs: 10, PageBytes: 4096, BulkSize: 7},
		},
		{
			name:       "case-insensitive dsync options and settings",
			url:        "mongodb://h/?CDC=ChangeStream;tls=false",
			settings:   map[string]string{"pagedocs": "5"},
			wantDriver: "mongodb://h/?tls=false",
			wantHosts:  "h:27017",
			wantOpts:   Options{CDC: CDCChangeStream, PageDocs: 5},
		},
		{
			name:       "srv",
			url:        "mongodb+srv://u:" + pw + "@cluster0.example.net/?retryWrites=true&cdc=changestream",
			wantDriver: "mongodb+srv://u:" + pw + "@cluster0.example.net/?retryWrites=true",
			wantHosts:  "cluster0.example.net",
			wantOpts:   Options{CDC: CDCChangeStream},
		},
		{name: "empty", url: "", wantErr: "empty connection string"},
		{name: "not a url", url: "::not a url", wantErr: "not a MongoDB connection string"},
		{name: "other scheme", url: "postgres://u:" + pw + "@h/db", wantErr: "not a MongoDB connection string"},
		{name: "unknown option", url: "mongodb://u:" + pw + "@h/?no_such_option=1", wantErr: `unknown option "no_such_option"`},
		{name: "bad cdc", url: "mongodb://h/?cdc=binlog", wantErr: "cdc=binlog is not a mode"},
		{name: "bad number", url: "mongodb://h/?pageDocs=ten", wantErr: "pageDocs=\"ten\" is not a positive integer"},
		{name: "out of range", url: "mongodb://h/?pageBytes=99999999999", wantErr: "pageBytes=99999999999 is out of range"},
		{name: "repeated", url: "mongodb://h/?cdc=oplog&cdc=oplog", wantErr: "given twice"},
		{name: "url and setting", url: "mongodb://h/?cdc=oplog", settings: map[string]string{"cdc": "oplog"}, wantErr: "both in the URL and as a setting"},
		{name: "unknown setting", url: "mongodb://h/", settings: map[string]string{"x": "1"}, wantErr: `unknown setting "x"`},
		{name: "bad driver value", url: "mongodb://u:" + pw + "@h/?maxPoolSize=lots", wantErr: "invalid connection string"},
		{name: "bad port", url: "mongodb://u:" + pw + "@h:99999/", wantErr: "invalid connection string"},
		{name: "srv with port", url: "mongodb+srv://u:" + pw + "@h.example.net:27017/", wantErr: "exactly one host without a port"},
		{name: "no host", url: "mongodb:///db", wantErr: "at least 1 host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, err := parseURL(tt.url, tt.settings)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("parseURL(%q) succeeded, want an error containing %q", tt.url, tt.wantErr)
				}
				if sdk.KindOf(err) != sdk.KindInvalidArgument {
					t.Errorf("error kind %v, want invalid argument", sdk.KindOf(err))
				}
				msg := err.Error()
				if !strings.Contains(msg, tt.wantErr) {
					t.Errorf("error %q does not contain %q", msg, tt.wantErr)
				}
				if strings.Contains(msg, "s3cr") || strings.Contains(msg, "\n") {
					t.Errorf("error %q shows the password or spans lines", msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseURL(%q): %v", tt.url, err)
			}
			if cc.driverURI != tt.wantDriver {
				t.Errorf("driver URL %q, want %q", cc.driverURI, tt.wantDriver)
			}
			if got := strings.Join(cc.hosts, ","); got != tt.wantHosts {
				t.Errorf("hosts %q, want %q", got, tt.wantHosts)
			}
			want := tt.wantOpts
			want.EnsureDefaults()
			if cc.opts != want {
				t.Errorf("options %+v, want %+v", cc.opts, want)
			}
			if strings.Contains(cc.redacted, "s3cr") {
				t.Errorf("redacted URL %q shows the password", cc.redacted)
			}
		})
	}
}

// Configure against a live server: errors and Info never show the
// password, and Info.ID does not depend on credentials or options.
func TestConfigureRedactsAndIdentifies(t *testing.T) {
	t.Parallel()
	uri := startFerret(t, false)
	host := strings.TrimSuffix(strings.TrimPrefix(uri, "mongodb://"), "/")
	a := configured(t, uri)
	b := configured(t, "mongodb://"+host+"/db?appName=x&pageDocs=5")
	ia, err := a.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	ib, _ := b.Info(testCtx(t))
	if ia.ID != ib.ID || ia.ID != "mongodb:"+host {
		t.Errorf("IDs %q and %q, want both %q", ia.ID, ib.ID, "mongodb:"+host)
	}
	if ia.DBType != "mongodb" || ia.Source == nil || ia.Sink == nil {
		t.Errorf("Info %+v: want db type mongodb, source and sink", ia)
	}

	// A closed port: unavailable (retryable), and no password in the text.
	c := New()
	ctx, cancel := context.WithTimeout(testCtx(t), 20*1e9)
	defer cancel()
	err = c.Configure(ctx, sdk.Config{URL: "mongodb://app:hunter2-secret@127.0.0.1:1/?serverSelectionTimeoutMS=500&connectTimeoutMS=500"})
	if err == nil {
		t.Fatal("Configure against a closed port succeeded")
	}
	if !sdk.IsRetryable(err) {
		t.Errorf("Configure against a closed port: %v (kind %v), want retryable", err, sdk.KindOf(err))
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
	if _, err := c.Info(testCtx(t)); sdk.KindOf(err) != sdk.KindFailedPrecondition {
		t.Errorf("Info after a failed Configure: %v, want a failed precondition", err)
	}
}
