package redact

import (
	"slices"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		secrets []string // must not survive
	}{
		{"mongodb", "mongodb://user:pass@host:27017/db", "mongodb://user:xxxxx@host:27017/db", []string{"pass"}},
		{"mongodb+srv", "mongodb+srv://app:S3cret@cluster0.example.net/?retryWrites=true&w=majority",
			"mongodb+srv://app:xxxxx@cluster0.example.net/?retryWrites=true&w=majority", []string{"S3cret"}},
		{"at in password", "postgres://user:p@ss@word@db.local:5432/app", "postgres://user:xxxxx@db.local:5432/app", []string{"p@ss@word", "ss@word"}},
		{"slash in password", "mongodb://u:pa/ss@host/db", "mongodb://u:xxxxx@host/db", []string{"pa/ss"}},
		{"colon in password", "postgres://u:a:b:c@h/db", "postgres://u:xxxxx@h/db", []string{"a:b:c"}},
		{"percent-encoded", "postgres://user:p%40ss%2Fw0rd@host/db?sslmode=disable",
			"postgres://user:xxxxx@host/db?sslmode=disable", []string{"p%40ss%2Fw0rd"}},
		{"no password", "mongodb://user@host/db", "mongodb://user@host/db", nil},
		{"empty password", "mongodb://user:@host/db", "mongodb://user:@host/db", nil},
		{"empty user", "mongodb://:pw1234@host", "mongodb://:xxxxx@host", []string{"pw1234"}},
		{"no user info", "mongodb://host:27017/db", "mongodb://host:27017/db", nil},
		{"at in query only", "mongodb://u:pw99@h/db?appName=a@b", "mongodb://u:xxxxx@h/db?appName=a@b", []string{"pw99"}},
		{"multi-host (net/url rejects)", "mongodb://u:hunter2@h1:27017,h2:27017/db?replicaSet=rs0",
			"mongodb://u:xxxxx@h1:27017,h2:27017/db?replicaSet=rs0", []string{"hunter2"}},
		{"spaces (unparseable)", "mongodb://us er:pa ss@ho st/db", "mongodb://us er:xxxxx@ho st/db", []string{"pa ss"}},
		{"bad escape (unparseable)", "postgres://u:%zz%@h/db", "postgres://u:xxxxx@h/db", []string{"%zz%"}},
		{"bad scheme (unparseable)", "%zz://u:pw77@h", "%zz://u:xxxxx@h", []string{"pw77"}},
		{"no scheme", "user:pass@host:5432/db", "user:xxxxx@host:5432/db", []string{"pass"}},
		{"query secrets", "s3://bucket/prefix?region=eu-west-1&access_key=AKIA123&secret_access_key=ab/c+d&sessionToken=tok1",
			"s3://bucket/prefix?region=eu-west-1&access_key=xxxxx&secret_access_key=xxxxx&sessionToken=xxxxx",
			[]string{"AKIA123", "ab/c+d", "tok1"}},
		{"query case-insensitive", "x://h/?PassWord=p1&TOKEN=t1&Api-Key=k1&pwd=p2&passwd=p3&auth_token=t2&X-Amz-Signature=s1",
			"x://h/?PassWord=xxxxx&TOKEN=xxxxx&Api-Key=xxxxx&pwd=xxxxx&passwd=xxxxx&auth_token=xxxxx&X-Amz-Signature=xxxxx",
			[]string{"p1", "t1", "k1", "p2", "p3", "t2", "s1"}},
		{"query and user info", "postgres://u:p1234@h/db?sslmode=require&password=other1",
			"postgres://u:xxxxx@h/db?sslmode=require&password=xxxxx", []string{"p1234", "other1"}},
		{"auth params kept", "mongodb://h/?authSource=admin&authMechanism=SCRAM-SHA-256",
			"mongodb://h/?authSource=admin&authMechanism=SCRAM-SHA-256", nil},
		{"auth properties", "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok99",
			"mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=xxxxx", []string{"tok99"}},
		{"token in query with at", "s3://bucket/key?token=abc:def@x", "s3://bucket/key?token=xxxxx", []string{"abc", "def"}},
		{"dsn", "host=db user=app password=secret dbname=x", "host=db user=app password=xxxxx dbname=x", []string{"secret"}},
		{"dsn quoted", `host=db password='se cret\'s' dbname=x`, "host=db password=xxxxx dbname=x", []string{"se cret", "cret"}},
		{"dsn spaces upper", "HOST = db PASSWORD = s3cret", "HOST = db PASSWORD = xxxxx", []string{"s3cret"}},
		{"odbc", "Server=db;Uid=app;Pwd={a;b};", "Server=db;Uid=app;Pwd=xxxxx;", []string{"{a;b}"}},
		{"grpc", "grpc://127.0.0.1:7000", "grpc://127.0.0.1:7000", nil},
		{"file", "file:///tmp/data", "file:///tmp/data", nil},
		{"empty", "", "", nil},
		{"garbage", "not a url", "not a url", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := URL(tt.in)
			if got != tt.want {
				t.Errorf("URL(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("URL(%q) = %q still contains %q", tt.in, got, s)
				}
			}
		})
	}
}

func TestIsSecretKey(t *testing.T) {
	for k, want := range map[string]bool{
		"password": true, "PASSWORD": true, "passwd": true, "pwd": true, "secret": true, "token": true,
		"key": true, "access_key": true, "secret_access_key": true, "sessionToken": true, "auth": true,
		"authToken": true, "authMechanismProperties": true, "X-Amz-Security-Token": true, "sig": true,
		"sslpassword": true, "apiKey": true,
		"authSource": false, "authMechanism": false, "user": false, "host": false, "sslmode": false,
		"replicaSet": false, "tlsCertificateKeyFile": false, "": false,
	} {
		if got := IsSecretKey(k); got != want {
			t.Errorf("IsSecretKey(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestSecrets(t *testing.T) {
	got := Secrets("mongodb://u:p%40ss@h/?token=t0k3n&password='quoted pw'")
	for _, want := range []string{"p%40ss", "p@ss", "t0k3n", "quoted pw"} {
		if !slices.Contains(got, want) {
			t.Errorf("Secrets = %q, missing %q", got, want)
		}
	}
	if got := Secrets("mongodb://h/db"); len(got) != 0 {
		t.Errorf("Secrets(no secret) = %q", got)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		secrets []string
		want    string
		gone    []string
	}{
		{"known secret", "auth failed for hunter22 at db", []string{"hunter22"}, "auth failed for xxxxx at db", []string{"hunter22"}},
		{"encoded forms", `q=s3+cr%2Ft u=s3%20cr%2Ft j="s3 cr\u003ct"`, []string{"s3 cr/t", "s3 cr<t"},
			`q=xxxxx u=xxxxx j="xxxxx"`, []string{"cr%2Ft", `cr\u003c`}},
		{"longest first", "pw=abcdef", []string{"abcd", "abcdef"}, "pw=xxxxx", []string{"ef"}},
		{"short secret kept", "table tab", []string{"ab"}, "table tab", nil},
		{"url in text", `dial "mongodb://u:hunter2@h:27017/db": connection refused`, nil,
			`dial "mongodb://u:xxxxx@h:27017/db": connection refused`, []string{"hunter2"}},
		{"two urls", "from postgres://a:pw1@h1/x to mongodb://b:pw2@h2/y", nil,
			"from postgres://a:xxxxx@h1/x to mongodb://b:xxxxx@h2/y", []string{"pw1", "pw2"}},
		{"key=value in text", "connect: host=db password=abc123 failed", nil,
			"connect: host=db password=xxxxx failed", []string{"abc123"}},
		{"json attr", `{"@message":"configuring","password":"p4ss w0rd","n":1}`, nil,
			`{"@message":"configuring","password":xxxxx,"n":1}`, []string{"p4ss"}},
		{"bearer", "Authorization: Bearer eyJhbGciOi.x.y", nil, "Authorization: xxxxx", []string{"eyJhbGciOi"}},
		{"secret inside non-secret value", "note: password=s3cr3t", nil, "note: password=xxxxx", []string{"s3cr3t"}},
		{"nothing to do", "copied 10 documents", nil, "copied 10 documents", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := String(tt.in, tt.secrets...)
			if got != tt.want {
				t.Errorf("String(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			for _, s := range tt.gone {
				if strings.Contains(got, s) {
					t.Errorf("String(%q) = %q still contains %q", tt.in, got, s)
				}
			}
		})
	}
}

func FuzzURL(f *testing.F) {
	f.Add("mongodb://user:p@ss@host/db?token=abc")
	f.Add("host=db password='x y'")
	f.Fuzz(func(t *testing.T, s string) {
		got := URL(s)
		for _, sec := range Secrets(s) {
			if len(sec) >= MinSecretLen && strings.Contains(got, sec) && !strings.Contains(Mask, sec) {
				// A secret may legitimately reappear when it is also a
				// non-secret part of the string; only flag the plain case.
				if strings.Count(s, sec) == 1 {
					t.Fatalf("URL(%q) = %q leaks %q", s, got, sec)
				}
			}
		}
	})
}
