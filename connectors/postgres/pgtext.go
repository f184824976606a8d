package postgres

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/bits"
	"strconv"
	"time"
)

// This file reads and writes the text forms of PostgreSQL values, as the
// server prints them with DateStyle=ISO, TimeZone=UTC, IntervalStyle=postgres,
// extra_float_digits=1 and bytea_output=hex (the session settings of every
// connection the connector opens).

var errSyntax = errors.New("unexpected text form")

// parseInt parses a decimal integer.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg || b[0] == '+' {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxUint64-9)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// parseFloat parses the text of a real or double precision value
// (including NaN, Infinity and -Infinity).
func parseFloat(b []byte, bitSize int) (float64, bool) {
	f, err := strconv.ParseFloat(string(b), bitSize)
	if err != nil {
		// Out-of-range errors still return the right infinity, but a
		// PostgreSQL float never prints out of range.
		return 0, false
	}
	return f, true
}

// appendPGFloat appends f as float8out (bitSize 64) or float4out (32)
// prints it with extra_float_digits > 0: the shortest text that reads
// back exactly, in fixed notation for decimal exponents in [-4, 15) (or
// [-4, 6) for real) and in exponential notation otherwise.
func appendPGFloat(dst []byte, f float64, bitSize int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	case f == 0:
		if math.Signbit(f) {
			return append(dst, "-0"...)
		}
		return append(dst, '0')
	}
	// Shortest digits and exponent: d.ddddde±XX.
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, bitSize)
	neg := e[0] == '-'
	if neg {
		e = e[1:]
		dst = append(dst, '-')
	}
	ei := bytes.IndexByte(e, 'e')
	mant, expText := e[:ei], e[ei+1:]
	exp, _ := strconv.Atoi(string(expText))
	digits := make([]byte, 0, len(mant))
	for _, c := range mant {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	maxFixed := 15
	if bitSize == 32 {
		maxFixed = 6
	}
	if exp < -4 || exp >= maxFixed {
		dst = append(dst, digits[0])
		if len(digits) > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if exp < 0 {
			dst = append(dst, '-')
			exp = -exp
		} else {
			dst = append(dst, '+')
		}
		if exp < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(exp), 10)
	}
	return appendPlainDigits(dst, digits, exp-(len(digits)-1))
}

// appendPlainDigits appends the decimal number digits×10^exp in fixed
// notation, with exactly max(0, -exp) digits after the point.
func appendPlainDigits(dst, digits []byte, exp int) []byte {
	switch {
	case exp >= 0:
		dst = append(dst, digits...)
		for range exp {
			dst = append(dst, '0')
		}
	case -exp >= len(digits):
		dst = append(dst, '0', '.')
		for range -exp - len(digits) {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		point := len(digits) + exp
		dst = append(dst, digits[:point]...)
		dst = append(dst, '.')
		dst = append(dst, digits[point:]...)
	}
	return dst
}

// decimal128 bits.
const (
	decMaxDigits = 34
	decMinExp    = -6176
	decMaxExp    = 6111
	decExpBias   = 6176
)

// parseNumeric reads the text of a numeric value into a Decimal128 (high,
// low bits). exact reports whether the Decimal128 holds the same value
// with the same scale; ok is false when no Decimal128 comes close (the
// exponent is out of range), and for text that is not a numeric.
func parseNumeric(b []byte) (h, l uint64, exact, ok bool) {
	switch string(b) {
	case "NaN":
		return 0x7c00000000000000, 0, true, true
	case "Infinity":
		return 0x7800000000000000, 0, true, true
	case "-Infinity":
		return 0xf800000000000000, 0, true, true
	}
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, 0, false, false
	}
	var digits [decMaxDigits + 1]byte
	n := 0          // significant digits kept in digits
	dropped := 0    // significant digits beyond decMaxDigits
	roundUp := 0    // 0 none, 1: first dropped digit > 5 or == 5 with more
	firstDrop := -1 // first dropped digit
	restNonZero := false
	frac := 0
	seenPoint := false
	seenDigit := false
	for _, c := range b {
		switch {
		case c == '.' && !seenPoint:
			seenPoint = true
			continue
		case c < '0' || c > '9':
			return 0, 0, false, false
		}
		seenDigit = true
		if seenPoint {
			frac++
		}
		if n == 0 && c == '0' {
			continue // leading zero
		}
		if n < decMaxDigits {
			digits[n] = c - '0'
			n++
			continue
		}
		if firstDrop < 0 {
			firstDrop = int(c - '0')
		} else if c != '0' {
			restNonZero = true
		}
		dropped++
	}
	if !seenDigit {
		return 0, 0, false, false
	}
	exp := dropped - frac
	// Dropping digits keeps the value and its text only when they are
	// zeros of the integer part.
	exact = dropped == 0 || firstDrop == 0 && !restNonZero && frac == 0
	if dropped > 0 {
		switch {
		case firstDrop > 5, firstDrop == 5 && restNonZero:
			roundUp = 1
		case firstDrop == 5 && digits[n-1]%2 == 1:
			roundUp = 1 // half to even
		}
		if roundUp == 1 {
			i := n - 1
			for i >= 0 && digits[i] == 9 {
				digits[i] = 0
				i--
			}
			if i >= 0 {
				digits[i]++
			} else {
				// 999...9 + 1: 1 followed by zeros, one digit shorter.
				digits[0] = 1
				for j := 1; j < n; j++ {
					digits[j] = 0
				}
				exp++
			}
		}
	}
	if exp < decMinExp || exp > decMaxExp {
		return 0, 0, false, false
	}
	var hi, lo uint64
	for i := range n {
		// (hi, lo) = (hi, lo)*10 + d
		h1, l1 := bits.Mul64(lo, 10)
		h1 += hi * 10
		l2, carry := bits.Add64(l1, uint64(digits[i]), 0)
		hi, lo = h1+carry, l2
	}
	h = hi | uint64(exp+decExpBias)<<49
	if neg {
		h |= 1 << 63
	}
	return h, lo, exact, true
}

// appendDecimalPlain appends a Decimal128 in the fixed notation numeric_out
// prints (NaN, Infinity, -Infinity for the special values). ok is false
// for a Decimal128 this function cannot read (non-canonical encodings).
func appendDecimalPlain(dst []byte, h, l uint64) ([]byte, bool) {
	neg := h>>63 == 1
	switch (h >> 58) & 0x1f {
	case 0x1f:
		return append(dst, "NaN"...), true
	case 0x1e:
		if neg {
			return append(dst, "-Infinity"...), true
		}
		return append(dst, "Infinity"...), true
	}
	if (h>>61)&3 == 3 {
		// Coefficient above 2^113: non-canonical, read as zero.
		exp := int((h>>47)&0x3fff) - decExpBias
		return appendPlainDigits(dst, []byte{'0'}, exp), true
	}
	exp := int((h>>49)&0x3fff) - decExpBias
	hi, lo := h&(1<<49-1), l
	var digits []byte
	if hi == 0 && lo == 0 {
		digits = []byte{'0'}
	} else {
		var rev [40]byte
		k := 0
		for hi != 0 || lo != 0 {
			var r uint64
			hi, r = bits.Div64(0, hi, 10)
			lo, r = bits.Div64(r, lo, 10)
			rev[k] = byte('0' + r)
			k++
		}
		digits = make([]byte, k)
		for i := range k {
			digits[i] = rev[k-1-i]
		}
		if neg {
			dst = append(dst, '-')
		}
	}
	return appendPlainDigits(dst, digits, exp), true
}

// parseBytea reads the hex form \x0a0b.
func parseBytea(b []byte) ([]byte, bool) {
	if len(b) < 2 || b[0] != '\\' || b[1] != 'x' {
		return nil, false
	}
	out := make([]byte, hex.DecodedLen(len(b)-2))
	if _, err := hex.Decode(out, b[2:]); err != nil {
		return nil, false
	}
	return out, true
}

func appendBytea(dst, v []byte) []byte {
	dst = append(dst, '\\', 'x')
	return hex.AppendEncode(dst, v)
}

// parseUUID reads xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func parseUUID(b []byte) ([]byte, bool) {
	if len(b) != 36 || b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return nil, false
	}
	var compact [32]byte
	k := 0
	for i, c := range b {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		compact[k] = c
		k++
	}
	out := make([]byte, 16)
	if _, err := hex.Decode(out, compact[:]); err != nil {
		return nil, false
	}
	return out, true
}

func appendUUID(dst, u []byte) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:16])
	return append(dst, buf[:]...)
}

const microsPerDay = 86400 * 1000000

// parseDate reads YYYY-MM-DD[ BC] into microseconds since the Unix epoch
// (UTC midnight).
func parseDate(b []byte) (int64, bool) {
	year, month, day, rest, ok := parseYMD(b)
	if !ok {
		return 0, false
	}
	bc := false
	switch string(rest) {
	case "":
	case " BC":
		bc = true
	default:
		return 0, false
	}
	if bc {
		year = 1 - year
	}
	sec := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC).Unix()
	return sec * 1000000, true
}

// parseTimestamp reads YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]][ BC]
// into microseconds since the Unix epoch, UTC.
func parseTimestamp(b []byte) (int64, bool) {
	year, month, day, rest, ok := parseYMD(b)
	if !ok || len(rest) < 9 || rest[0] != ' ' || rest[3] != ':' || rest[6] != ':' {
		return 0, false
	}
	hh, ok1 := atoi2(rest[1:3])
	mm, ok2 := atoi2(rest[4:6])
	ss, ok3 := atoi2(rest[7:9])
	if !ok1 || !ok2 || !ok3 {
		return 0, false
	}
	rest = rest[9:]
	var micros int64
	if len(rest) > 0 && rest[0] == '.' {
		rest = rest[1:]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 || n > 6 {
			return 0, false
		}
		for i := range 6 {
			micros *= 10
			if i < n {
				micros += int64(rest[i] - '0')
			}
		}
		rest = rest[n:]
	}
	var offset int64 // seconds east of UTC
	if len(rest) > 0 && (rest[0] == '+' || rest[0] == '-') {
		sign := int64(1)
		if rest[0] == '-' {
			sign = -1
		}
		rest = rest[1:]
		parts := 0
		for parts < 3 && len(rest) >= 2 {
			v, ok := atoi2(rest[:2])
			if !ok {
				return 0, false
			}
			offset = offset*60 + int64(v)
			rest = rest[2:]
			parts++
			if len(rest) > 0 && rest[0] == ':' {
				rest = rest[1:]
				continue
			}
			break
		}
		for ; parts < 3; parts++ {
			offset *= 60
		}
		offset *= sign
	}
	switch string(rest) {
	case "":
	case " BC":
		year = 1 - year
	default:
		return 0, false
	}
	sec := time.Date(year, time.Month(month), day, hh, mm, ss, 0, time.UTC).Unix() - offset
	return sec*1000000 + micros, true
}

func parseYMD(b []byte) (year, month, day int, rest []byte, ok bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i < 4 || len(b) < i+6 || b[i] != '-' || b[i+3] != '-' {
		return 0, 0, 0, nil, false
	}
	y, ok0 := parseInt(b[:i])
	m, ok1 := atoi2(b[i+1 : i+3])
	d, ok2 := atoi2(b[i+4 : i+6])
	if !ok0 || !ok1 || !ok2 || m < 1 || m > 12 || d < 1 || d > 31 {
		return 0, 0, 0, nil, false
	}
	return int(y), m, d, b[i+6:], true
}

func atoi2(b []byte) (int, bool) {
	if len(b) != 2 || b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

// floorDiv divides rounding toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// appendDate appends the date of ms (UTC) as date_out prints it.
func appendDate(dst []byte, ms int64) []byte {
	t := time.UnixMilli(ms).UTC()
	dst, bc := appendYMD(dst, t)
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

// appendTimestamp appends ms (UTC) as timestamp_out (zone false) or
// timestamptz_out in UTC (zone true) print it.
func appendTimestamp(dst []byte, ms int64, zone bool) []byte {
	t := time.UnixMilli(ms).UTC()
	dst, bc := appendYMD(dst, t)
	dst = append(dst, ' ')
	dst = append2(dst, t.Hour())
	dst = append(dst, ':')
	dst = append2(dst, t.Minute())
	dst = append(dst, ':')
	dst = append2(dst, t.Second())
	if frac := t.Nanosecond() / 1000000; frac != 0 {
		d := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
		n := 3
		for d[n-1] == '0' {
			n--
		}
		dst = append(dst, '.')
		dst = append(dst, d[:n]...)
	}
	if zone {
		dst = append(dst, "+00"...)
	}
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

func appendYMD(dst []byte, t time.Time) ([]byte, bool) {
	y := t.Year()
	bc := y <= 0
	if bc {
		y = 1 - y
	}
	if y < 1000 {
		dst = append(dst, "000"[:4-len(strconv.Itoa(y))]...)
	}
	dst = strconv.AppendInt(dst, int64(y), 10)
	dst = append(dst, '-')
	dst = append2(dst, int(t.Month()))
	dst = append(dst, '-')
	dst = append2(dst, t.Day())
	return dst, bc
}

func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10), byte('0'+v%10))
}

// arrayNeedsQuotes reports whether array_out quotes an element.
func arrayNeedsQuotes(s []byte, delim byte) bool {
	if len(s) == 0 || (len(s) == 4 && bytes.EqualFold(s, []byte("NULL"))) {
		return true
	}
	for _, c := range s {
		switch c {
		case '"', '\\', '{', '}', delim, ' ', '\t', '\n', '\r', '\v', '\f':
			return true
		}
	}
	return false
}

// appendArrayElem appends one element text, quoted as array_out does.
func appendArrayElem(dst, s []byte, delim byte) []byte {
	if !arrayNeedsQuotes(s, delim) {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for _, c := range s {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

// arrayNode is a parsed array literal: either an element (text, or null)
// or a sub-array.
type arrayNode struct {
	text  []byte
	null  bool
	items []arrayNode
	sub   bool
}

// parseArray reads an array literal as array_out prints it, with an
// optional dimension decoration ([0:2]={...}), which it skips.
func parseArray(b []byte, delim byte) (arrayNode, bool) {
	if len(b) > 0 && b[0] == '[' {
		i := bytes.IndexByte(b, '=')
		if i < 0 {
			return arrayNode{}, false
		}
		b = b[i+1:]
	}
	p := arrayParser{b: b, delim: delim}
	n, ok := p.parse()
	if !ok || p.i != len(p.b) {
		return arrayNode{}, false
	}
	return n, true
}

type arrayParser struct {
	b     []byte
	i     int
	delim byte
}

func (p *arrayParser) parse() (arrayNode, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return arrayNode{}, false
	}
	p.i++
	n := arrayNode{sub: true}
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return n, true
	}
	for {
		if p.i >= len(p.b) {
			return arrayNode{}, false
		}
		var item arrayNode
		switch p.b[p.i] {
		case '{':
			sub, ok := p.parse()
			if !ok {
				return arrayNode{}, false
			}
			item = sub
		case '"':
			p.i++
			var s []byte
			for {
				if p.i >= len(p.b) {
					return arrayNode{}, false
				}
				c := p.b[p.i]
				p.i++
				if c == '"' {
					break
				}
				if c == '\\' {
					if p.i >= len(p.b) {
						return arrayNode{}, false
					}
					c = p.b[p.i]
					p.i++
				}
				s = append(s, c)
			}
			item.text = s
			if item.text == nil {
				item.text = []byte{}
			}
		default:
			start := p.i
			for p.i < len(p.b) && p.b[p.i] != p.delim && p.b[p.i] != '}' {
				p.i++
			}
			item.text = p.b[start:p.i]
			if bytes.EqualFold(item.text, []byte("NULL")) {
				item = arrayNode{null: true}
			}
		}
		n.items = append(n.items, item)
		if p.i >= len(p.b) {
			return arrayNode{}, false
		}
		switch p.b[p.i] {
		case p.delim:
			p.i++
		case '}':
			p.i++
			return n, true
		default:
			return arrayNode{}, false
		}
	}
}
