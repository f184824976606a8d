// Package mask implements the built-in transform mask, which hides field
// values, for instance to copy production data to a staging system.
//
// # Spec
//
//	mask:PATH=METHOD[,PATH=METHOD...][;key-env=VARIABLE | ;key=SECRET]
//
// PATH is a field name or a dotted path into embedded documents; it applies
// to every document of an array it meets (mask:contacts.email masks the
// email of each document in contacts). Paths may not repeat or overlap, and
// may not be or be inside _id. METHOD is one of:
//
//	hash    every value that is neither a document nor an array becomes the
//	        lowercase hex HMAC-SHA256 of the value (64 characters);
//	        documents and arrays keep their shape with each value inside
//	        hashed; null stays null. Equal values hash equally, so hashed
//	        fields still join and group.
//	redact  the value, whatever its type, becomes the string "REDACTED".
//	null    the value becomes null.
//
// A missing field stays missing. The hash of a string is computed over its
// UTF-8 bytes; that of another value over its BSON type byte followed by
// its BSON value bytes, so the number 1 and the string "1" hash differently.
//
// The HMAC key is read from the environment variable named by key-env
// (recommended: the environment of dsync reaches its built-in plugins), or
// given inline with key= (the spec, key included, is stored with the flow
// in the state directory; log lines show it as xxxxx). Without either, the
// fixed key [DefaultKey] is used: the output is still deterministic, but
// anyone can hash guesses of a small domain such as phone numbers and
// compare, so use a secret key for personal data. The flow id covers the
// spec, not the key read from key-env: after changing that key, start the
// flow over with --reset, or the sink mixes hashes of both keys.
//
// # Changes
//
// Inserted and replacing documents are masked like copied ones; deletes
// pass unchanged. In a partial update, a value set at or under a masked
// path is masked (with redact and null, a field set inside a masked value
// sets the whole masked field again); a value set above a masked path is
// masked inside. Unsets pass unchanged, except that with redact and null an
// unset inside a masked value is dropped, since the masked value does not
// change.
package mask
