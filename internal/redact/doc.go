// Package redact removes secrets from connection strings and from free text
// before they reach a log, an error message, a terminal or a file.
//
// [URL] takes anything a user may pass as a connection string — a URL
// (mongodb://, mongodb+srv://, postgres://, s3://, ...), a scheme-less
// user:password@host form, or a keyword/value DSN such as PostgreSQL's
// "host=db user=app password=secret" — and replaces every password and every
// secret-looking parameter value with [Mask]. It never parses with net/url:
// it scans the string, so input net/url rejects (an '@' or '/' in an
// unescaped password, several hosts, stray spaces) is handled the same way,
// and everything that is not a secret comes back byte for byte.
//
// [String] scrubs arbitrary text (plugin stderr, error messages): the known
// secrets it is given, in their raw and percent-encoded forms, and any
// credentials embedded in URLs or key=value pairs inside the text. [Secrets]
// extracts from a connection string the substrings worth scrubbing.
//
// The contract is one-sided: redaction may remove more than the secret when
// input is ambiguous (a password containing '&' in a query string, an '@' in
// a path), but it never returns a secret it recognised.
package redact
