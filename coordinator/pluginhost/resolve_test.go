package pluginhost

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	pluginDir := t.TempDir()
	pathDir := t.TempDir()
	wd := t.TempDir()
	explicit := writeScript(t, wd, "my-plugin", "exit 0\n")
	noexec := filepath.Join(wd, "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dirPlug := writeScript(t, pluginDir, "dsync-connector-dirplug", "exit 0\n")
	writeScript(t, pluginDir, "dsync-connector-both", "exit 0\n")
	if err := os.WriteFile(filepath.Join(pluginDir, "dsync-connector-noexec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pathPlug := writeScript(t, pathDir, "dsync-connector-pathplug", "exit 0\n")
	writeScript(t, pathDir, "dsync-connector-both", "exit 0\n")
	pathXf := writeScript(t, pathDir, "dsync-transform-upper", "exit 0\n")
	writeScript(t, pathDir, "dsync-connector-testsrc", "exit 0\n") // shadowed by the built-in
	t.Setenv("PATH", pathDir)

	opts := Options{
		Self:      "/opt/dsync/bin/dsync",
		Builtins:  Builtins{Connectors: []string{"testsrc", "mongodb+srv"}, Transforms: []string{"testxf"}},
		PluginDir: pluginDir,
	}
	tests := []struct {
		name    string
		spec    Spec
		want    Resolved
		wantErr error
		errHas  []string
	}{
		{name: "explicit path", spec: Spec{Role: RoleSource, Arg: "whatever://u:pw@h", ExplicitPath: explicit},
			want: Resolved{Role: RoleSource, Name: "my-plugin", Path: explicit}},
		{name: "explicit path wins over built-in", spec: Spec{Role: RoleSink, Arg: "testsrc://h", ExplicitPath: explicit},
			want: Resolved{Role: RoleSink, Name: "my-plugin", Path: explicit}},
		{name: "explicit name on PATH", spec: Spec{Role: RoleSource, Arg: "x://h", ExplicitPath: "dsync-connector-pathplug"},
			want: Resolved{Role: RoleSource, Name: "dsync-connector-pathplug", Path: pathPlug}},
		{name: "explicit missing", spec: Spec{Role: RoleSource, Arg: "x://h", ExplicitPath: filepath.Join(wd, "nope")},
			wantErr: ErrPluginNotFound, errHas: []string{"source plugin", "nope", "no such file"}},
		{name: "explicit not executable", spec: Spec{Role: RoleSource, Arg: "x://h", ExplicitPath: noexec},
			wantErr: ErrNotExecutable, errHas: []string{"noexec", "chmod +x"}},
		{name: "explicit directory", spec: Spec{Role: RoleSource, Arg: "x://h", ExplicitPath: wd},
			wantErr: ErrNotExecutable, errHas: []string{"is a directory"}},
		{name: "built-in", spec: Spec{Role: RoleSource, Arg: "testsrc://u:pw@h/db"},
			want: Resolved{Role: RoleSource, Name: "testsrc", Builtin: true, Path: opts.Self,
				Args: []string{"plugin", "serve", "connector", "testsrc"}}},
		{name: "built-in scheme is case-insensitive", spec: Spec{Role: RoleSink, Arg: "MongoDB+SRV://h/db"},
			want: Resolved{Role: RoleSink, Name: "mongodb+srv", Builtin: true, Path: opts.Self,
				Args: []string{"plugin", "serve", "connector", "mongodb+srv"}}},
		{name: "built-in shadows PATH", spec: Spec{Role: RoleSource, Arg: "testsrc://h"},
			want: Resolved{Role: RoleSource, Name: "testsrc", Builtin: true, Path: opts.Self,
				Args: []string{"plugin", "serve", "connector", "testsrc"}}},
		{name: "plugin dir", spec: Spec{Role: RoleSource, Arg: "dirplug://h"},
			want: Resolved{Role: RoleSource, Name: "dirplug", Path: dirPlug}},
		{name: "plugin dir before PATH", spec: Spec{Role: RoleSource, Arg: "both://h"},
			want: Resolved{Role: RoleSource, Name: "both", Path: filepath.Join(pluginDir, "dsync-connector-both")}},
		{name: "plugin dir not executable", spec: Spec{Role: RoleSource, Arg: "noexec://h"},
			wantErr: ErrNotExecutable, errHas: []string{"dsync-connector-noexec"}},
		{name: "PATH", spec: Spec{Role: RoleSink, Arg: "pathplug://u:pw@h"},
			want: Resolved{Role: RoleSink, Name: "pathplug", Path: pathPlug}},
		{name: "grpc", spec: Spec{Role: RoleSource, Arg: "grpc://10.1.2.3:7000/?token=abc"},
			want: Resolved{Role: RoleSource, Name: "10.1.2.3:7000", Addr: "10.1.2.3:7000"}},
		{name: "grpc without port", spec: Spec{Role: RoleSource, Arg: "grpc://host"},
			wantErr: ErrMalformedURL, errHas: []string{"grpc://host:port"}},
		{name: "unknown scheme", spec: Spec{Role: RoleSource, Arg: "nope://alice:hunter22@h/db"},
			wantErr: ErrUnknownScheme, errHas: []string{`"nope"`, "mongodb+srv, testsrc", "dsync-connector-nope", pluginDir, "PATH", "alice:xxxxx@h"}},
		{name: "malformed", spec: Spec{Role: RoleSource, Arg: "not a url"},
			wantErr: ErrMalformedURL, errHas: []string{"scheme://"}},
		{name: "malformed keyword/value DSN", spec: Spec{Role: RoleSink, Arg: "host=db password=hunter22"},
			wantErr: ErrMalformedURL, errHas: []string{"password=xxxxx", "sink"}},
		{name: "malformed empty", spec: Spec{Role: RoleSink, Arg: ""}, wantErr: ErrMalformedURL},
		{name: "transform built-in", spec: Spec{Role: RoleTransform, Arg: "testxf:prefix_"},
			want: Resolved{Role: RoleTransform, Name: "testxf", Builtin: true, Path: opts.Self,
				Args: []string{"plugin", "serve", "transform", "testxf"}}},
		{name: "transform without spec", spec: Spec{Role: RoleTransform, Arg: "testxf"},
			want: Resolved{Role: RoleTransform, Name: "testxf", Builtin: true, Path: opts.Self,
				Args: []string{"plugin", "serve", "transform", "testxf"}}},
		{name: "transform on PATH", spec: Spec{Role: RoleTransform, Arg: "upper:name"},
			want: Resolved{Role: RoleTransform, Name: "upper", Path: pathXf}},
		{name: "transform explicit", spec: Spec{Role: RoleTransform, Arg: "anything at all", ExplicitPath: explicit},
			want: Resolved{Role: RoleTransform, Name: "my-plugin", Path: explicit}},
		{name: "unknown transform", spec: Spec{Role: RoleTransform, Arg: "nope:x"},
			wantErr: ErrUnknownTransform, errHas: []string{`"nope"`, "testxf", "dsync-transform-nope"}},
		{name: "malformed transform", spec: Spec{Role: RoleTransform, Arg: "bad name:x"}, wantErr: ErrMalformedTransform},
		{name: "bad role", spec: Spec{Role: "reader", Arg: "testsrc://h"}, wantErr: ErrInvalidRole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(opts, tt.spec)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resolve error = %v, want %v", err, tt.wantErr)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "pluginhost: ") || strings.Contains(msg, "\n") {
					t.Errorf("error is not one line with the package prefix: %q", msg)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(msg, s) {
						t.Errorf("error %q does not mention %q", msg, s)
					}
				}
				for _, secret := range []string{"hunter22", ":pw@"} {
					if strings.Contains(msg, secret) {
						t.Errorf("error %q leaks %q", msg, secret)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if got.Role != tt.want.Role || got.Name != tt.want.Name || got.Builtin != tt.want.Builtin ||
				got.Path != tt.want.Path || !slices.Equal(got.Args, tt.want.Args) || got.Addr != tt.want.Addr {
				t.Errorf("Resolve = %+v, want %+v", got, tt.want)
			}
			if s := got.String(); strings.Contains(s, "pw") || strings.Contains(s, "token") {
				t.Errorf("String() = %q mentions the argument's secrets", s)
			}
		})
	}
}

func TestResolvedString(t *testing.T) {
	for _, tt := range []struct {
		r    Resolved
		want string
	}{
		{Resolved{Role: RoleSource, Name: "foo", Path: "/p/dsync-connector-foo"}, `source plugin "dsync-connector-foo" (/p/dsync-connector-foo)`},
		{Resolved{Role: RoleSink, Name: "mongodb", Builtin: true, Path: "/bin/dsync"}, `sink plugin "mongodb" (built-in)`},
		{Resolved{Role: RoleSource, Name: "h:1", Addr: "h:1"}, `source plugin "h:1" (grpc)`},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	if got := (Resolved{Role: RoleSource, Name: "mongodb"}).LogName(); got != "source.mongodb" {
		t.Errorf("LogName() = %q", got)
	}
}

func TestDiscover(t *testing.T) {
	pluginDir := t.TempDir()
	pathDir := t.TempDir()
	writeScript(t, pluginDir, "dsync-connector-foo", "")
	writeScript(t, pluginDir, "dsync-transform-upper", "")
	writeScript(t, pluginDir, "unrelated", "")
	if err := os.WriteFile(filepath.Join(pluginDir, "dsync-connector-noexec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	writeScript(t, pathDir, "dsync-connector-foo", "")
	writeScript(t, pathDir, "dsync-connector-mongodb", "")
	writeScript(t, pathDir, "dsync-connector-", "")
	t.Setenv("PATH", pathDir+string(os.PathListSeparator)+pathDir)

	got := Discover(Options{Self: "/bin/dsync", PluginDir: pluginDir,
		Builtins: Builtins{Connectors: []string{"mongodb"}, Transforms: []string{"rename"}}})
	want := []Discovered{
		{Name: "mongodb", Kind: KindConnector, Path: "/bin/dsync", Builtin: true},
		{Name: "rename", Kind: KindTransform, Path: "/bin/dsync", Builtin: true},
		{Name: "foo", Kind: KindConnector, Path: filepath.Join(pluginDir, "dsync-connector-foo")},
		{Name: "upper", Kind: KindTransform, Path: filepath.Join(pluginDir, "dsync-transform-upper")},
		{Name: "foo", Kind: KindConnector, Path: filepath.Join(pathDir, "dsync-connector-foo"), Shadowed: true},
		{Name: "mongodb", Kind: KindConnector, Path: filepath.Join(pathDir, "dsync-connector-mongodb"), Shadowed: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Discover =\n%+v\nwant\n%+v", got, want)
	}
}
