package redact

import (
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// Mask replaces every redacted secret.
const Mask = "xxxxx"

// MinSecretLen is the shortest known secret [String] scrubs as a plain
// substring: shorter ones would match everywhere. Credentials found by
// structure (URL user info, secret-looking key=value pairs) are redacted
// whatever their length.
const MinSecretLen = 4

// URL returns s with its secrets replaced by [Mask]: the password of a URL's
// user info (scheme://user:pass@host, also without a scheme), and the value
// of every key=value pair whose key looks secret (see [IsSecretKey]), in a
// query string or a keyword/value DSN. Everything else is returned as is.
func URL(s string) string {
	return apply(s, connRanges(s))
}

// Secrets returns the secret substrings [URL] would remove from s, raw and
// percent-decoded, for use with [String].
func Secrets(s string) []string {
	var out []string
	for _, r := range connRanges(s) {
		v := unquote(s[r.start:r.end])
		if v == "" {
			continue
		}
		out = append(out, v)
		if d, err := url.PathUnescape(v); err == nil && d != v {
			out = append(out, d)
		}
	}
	return out
}

// String returns s with secrets removed: every known secret (raw,
// percent-encoded or JSON-escaped) of at least [MinSecretLen] bytes, then
// the credentials of any URL or secret-looking key=value pair in s.
func String(s string, secrets ...string) string {
	s = scrubKnown(s, secrets)
	var rs []span
	for _, m := range urlInText.FindAllStringIndex(s, -1) {
		for _, r := range userinfoRanges(s[m[0]:m[1]]) {
			rs = append(rs, span{r.start + m[0], r.end + m[0]})
		}
	}
	rs = append(rs, kvRanges(s)...)
	return apply(s, rs)
}

// IsSecretKey reports whether a parameter, option or log attribute named
// name probably holds a secret. The test is case-insensitive and ignores
// punctuation: password, passwd, pwd, passphrase, secret, token, credential,
// signature or sig, anything ending in key (key, access_key,
// secret_access_key, apiKey), and auth... except authSource and
// authMechanism, which name a database and a mechanism.
func IsSecretKey(name string) bool {
	n := normalizeKey(name)
	if n == "" {
		return false
	}
	switch n {
	case "authsource", "authmechanism":
		return false
	case "sig", "pass":
		return true
	}
	for _, w := range []string{"password", "passwd", "passphrase", "pwd", "secret", "token", "credential", "signature"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return strings.HasSuffix(n, "key") || strings.HasPrefix(n, "auth")
}

func normalizeKey(name string) string {
	if d, err := url.QueryUnescape(name); err == nil {
		name = d
	}
	var b strings.Builder
	for _, r := range name {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// span is a byte range [start, end) to mask.
type span struct{ start, end int }

// connRanges finds the secrets of a connection string.
func connRanges(s string) []span {
	return append(userinfoRanges(s), kvRanges(s)...)
}

// userinfoRanges finds the password of a URL-ish string's user info. The
// user info ends at the last '@' before the first '/', '?' or '#' that
// follows the first '@', so an unescaped '@' or '/' in a password stays
// inside the mask; without "://" the whole string is tried when it has no
// spaces.
func userinfoRanges(s string) []span {
	off := 0
	if i := strings.Index(s, "://"); i >= 0 {
		off = i + 3
	} else if strings.ContainsFunc(s, unicode.IsSpace) {
		return nil
	}
	rest := s[off:]
	first := strings.IndexByte(rest, '@')
	if first < 0 {
		return nil
	}
	end := len(rest)
	if j := strings.IndexAny(rest[first:], "/?#"); j >= 0 {
		end = first + j
	}
	at := strings.LastIndexByte(rest[:end], '@')
	ui := rest[:at]
	c := strings.IndexByte(ui, ':')
	if c < 0 || c+1 == len(ui) {
		return nil
	}
	return []span{{off + c + 1, off + at}}
}

var (
	// kvKey matches a key and its separator; the value is scanned by
	// valueEnd. The key may be quoted (JSON).
	kvKey = regexp.MustCompile(`["']?([A-Za-z_][A-Za-z0-9_.\-]*)["']?[ \t]*[=:][ \t]*`)
	// urlInText finds URLs in free text.
	urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>` + "`" + `]+`)
)

// kvRanges finds the values of secret-looking key=value (or key: value)
// pairs. A non-secret pair does not consume its value, so a secret pair
// inside it is still found.
func kvRanges(s string) []span {
	var out []span
	pos := 0
	for pos < len(s) {
		m := kvKey.FindStringSubmatchIndex(s[pos:])
		if m == nil {
			break
		}
		key := s[pos+m[2] : pos+m[3]]
		vs := pos + m[1]
		if !IsSecretKey(key) {
			pos = vs
			continue
		}
		ve := valueEnd(s, vs)
		if ve > vs {
			out = append(out, span{vs, ve})
		}
		pos = max(ve, vs+1)
	}
	return out
}

// valueEnd returns the end of the value starting at i: a quoted string (to
// its closing quote or the end), a {braced} ODBC value, or a run up to
// whitespace, '&' or ';'. "Bearer x" and "Basic x" take the next word too.
func valueEnd(s string, i int) int {
	if i >= len(s) {
		return i
	}
	j := i
	switch q := s[i]; q {
	case '\'', '"':
		j = len(s)
		for k := i + 1; k < len(s); k++ {
			if s[k] == '\\' {
				k++
			} else if s[k] == q {
				j = k + 1
				break
			}
		}
	case '{':
		j = len(s)
		if k := strings.IndexByte(s[i:], '}'); k >= 0 {
			j = i + k + 1
		}
	}
	if j > i {
		return j
	}
	for j < len(s) && !isValueStop(s[j]) {
		j++
	}
	if w := strings.ToLower(s[i:j]); w == "bearer" || w == "basic" {
		k := j
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		if k > j {
			for k < len(s) && !isValueStop(s[k]) {
				k++
			}
			j = k
		}
	}
	return j
}

func isValueStop(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '&' || c == ';'
}

// apply replaces the union of rs in s with Mask, one Mask per merged range.
func apply(s string, rs []span) string {
	if len(rs) == 0 {
		return s
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].start < rs[j].start })
	var b strings.Builder
	last := 0
	cur := rs[0]
	flush := func() {
		b.WriteString(s[last:cur.start])
		b.WriteString(Mask)
		last = cur.end
	}
	for _, r := range rs[1:] {
		if r.start <= cur.end {
			cur.end = max(cur.end, r.end)
			continue
		}
		flush()
		cur = r
	}
	flush()
	b.WriteString(s[last:])
	return b.String()
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// scrubKnown replaces known secrets and their encoded forms, longest first.
func scrubKnown(s string, secrets []string) string {
	var olds []string
	seen := map[string]bool{}
	add := func(v string) {
		if len(v) >= MinSecretLen && !seen[v] {
			seen[v] = true
			olds = append(olds, v)
		}
	}
	for _, sec := range secrets {
		add(sec)
		add(url.QueryEscape(sec))
		add(url.PathEscape(sec))
		if j, err := json.Marshal(sec); err == nil {
			add(string(j[1 : len(j)-1]))
		}
	}
	if len(olds) == 0 {
		return s
	}
	sort.SliceStable(olds, func(i, j int) bool { return len(olds[i]) > len(olds[j]) })
	pairs := make([]string, 0, 2*len(olds))
	for _, o := range olds {
		pairs = append(pairs, o, Mask)
	}
	return strings.NewReplacer(pairs...).Replace(s)
}
