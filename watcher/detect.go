package watcher

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// UpdateKind says what kind of update an image has.
type UpdateKind string

const (
	UpdateNone       UpdateKind = "none"
	UpdateMajor      UpdateKind = "major"
	UpdateMinor      UpdateKind = "minor"
	UpdatePatch      UpdateKind = "patch"
	UpdateBuild      UpdateKind = "build"      // only the build counter (-ls231, -r2) moved
	UpdatePrerelease UpdateKind = "prerelease" // a newer pre-release of the same numeric version
	UpdateDigest     UpdateKind = "digest"     // (decided by the caller from digests; declared here)
	UpdateUnknown    UpdateKind = "unknown"    // (used by callers when a check failed)
)

// Available reports whether k is an update to act on: neither none nor
// unknown.
func (k UpdateKind) Available() bool { return k != "" && k != UpdateNone && k != UpdateUnknown }

// Decision is what detection concluded for one image's tag.
type Decision struct {
	Tag         string     // newest tag to offer; equals current when nothing newer
	Kind        UpdateKind // UpdateNone when nothing newer
	WatchDigest bool       // true when the caller should compare the digest behind the current tag
}

// Decide picks the newest tag an admin should see, from the repository's tags.
// Pure: no I/O.
//
// Each tag is parsed once and looked at once, so the cost is linear in the
// number of tags; registries return hundreds of tags per repository and a
// cycle covers thousands of images.
func Decide(current string, tags []string, opt TagOptions) Decision {
	none := Decision{Tag: current, Kind: UpdateNone}
	from, ok := ParseTag(opt.Transform.Apply(current))
	if !ok {
		// Nothing to compare with (latest, main, a git sha): only the digest
		// can tell that the image changed.
		none.WatchDigest = digestOrDefault(opt.Digest, true)
		return none
	}

	floating := false
	best := none
	var bestTag Tag
	for _, raw := range tags {
		to, ok := ParseTag(opt.Transform.Apply(raw))
		if !ok {
			continue
		}
		if !floating && to.extends(from) {
			floating = true
		}
		if !from.Comparable(to) || from.Compare(to) >= 0 {
			continue
		}
		if to.Prerelease() && !(from.Prerelease() && from.sameNumbers(to)) {
			// Pre-releases are only for those already following a
			// pre-release of exactly that version.
			continue
		}
		if opt.Include != nil && !opt.Include.MatchString(raw) {
			continue
		}
		if opt.Exclude != nil && opt.Exclude.MatchString(raw) {
			continue
		}
		kind := updateKind(from, to)
		if !policyAllows(opt.Policy, kind) {
			continue
		}
		if best.Kind != UpdateNone {
			// Ties (18.04 vs 18.4, rc1 vs rc.1) go to the larger string so
			// the answer does not depend on the registry's listing order.
			if c := bestTag.Compare(to); c > 0 || (c == 0 && best.Tag >= raw) {
				continue
			}
		}
		best, bestTag = Decision{Tag: raw, Kind: kind}, to
	}
	// A numbered pre-release (17beta1) is one fixed build even when a longer
	// version extends it later; a bare one (-rc, -dev, -nightly) is
	// republished under the same tag whether or not anything extends it.
	if from.Prerelease() {
		floating = !from.preNumbered
	}
	floating = floating || from.rolling
	best.WatchDigest = digestOrDefault(opt.Digest, floating)
	return best
}

func digestOrDefault(explicit *bool, def bool) bool {
	if explicit != nil {
		return *explicit
	}
	return def
}

// kindRank orders kinds by how far an update may go; build and prerelease
// moves stay within one numeric version, so any policy allows them.
func kindRank(k UpdateKind) int {
	switch k {
	case UpdateMajor:
		return 3
	case UpdateMinor:
		return 2
	case UpdatePatch:
		return 1
	default:
		return 0
	}
}

// policyAllows applies TagOptions.Policy; an empty policy (or one
// ParseTagOptions would have rejected) caps nothing.
func policyAllows(policy UpdateKind, kind UpdateKind) bool {
	switch policy {
	case UpdateMajor, UpdateMinor, UpdatePatch:
		return kindRank(kind) <= kindRank(policy)
	default:
		return true
	}
}

// updateKind names the move from one tag to a newer tag of the same shape.
//
// A 4th numeric part (sonarr's 4.0.2.1183) counts as patch: for those
// projects it numbers shipped releases, while "build" is kept for packaging
// counters such as -ls231 that rebuild the same release. A leading timestamp
// (jammy-20240125) counts as patch: a newer snapshot of the same line.
func updateKind(from, to Tag) UpdateKind {
	for i := range from.parts {
		if from.nums[i] == to.nums[i] {
			continue
		}
		switch {
		case from.timestamp:
			return UpdatePatch
		case i == 0:
			return UpdateMajor
		case i == 1:
			return UpdateMinor
		default:
			return UpdatePatch
		}
	}
	if from.pre != to.pre {
		// Includes the step from a pre-release to its final release.
		return UpdatePrerelease
	}
	if from.letter != to.letter {
		return UpdatePatch // OpenSSL's 1.1.1v → 1.1.1w fixes, as a patch does
	}
	return UpdateBuild
}

// Tag is a tag split into the parts that decide what it can be compared with
// (its shape: prefix, number of numeric parts, suffix family) and the parts
// that order it within that shape (numbers, pre-release, build counters).
//
//	version-4.0.2.1183-ls229 → prefix "version-", 4.0.2.1183, family "-ls#", build 229
//	3.8.0b1-alpine           → 3.8.0, pre-release beta 1, family "-alpine"
//	16.4-alpine3.20          → 16.4, family "-alpine3.20" (the base image is part of the shape)
type Tag struct {
	original  string
	prefix    string
	parts     int // numeric parts, 1 to 4
	nums      [maxParts]uint64
	timestamp bool // first part looks like a date or build stamp (20240125), never a version number
	// pre is the pre-release normalized for semver precedence, "" when stable.
	pre string
	// preNumbered tells rc1 (one fixed build) from a bare rc, dev or
	// nightly, which is republished under the same tag.
	preNumbered bool
	family      string // suffix with build counters as '#' and git shas as '*', after a shape marker (see ParseTag)
	// build holds the build counters; a timestamp's respin (noble-20240827.1)
	// is build[0], ahead of the suffix's counters.
	build [maxCounters]uint64
	// rolling marks a channel republished under the same tag (1.22-nightly).
	rolling bool
	// letter is OpenSSL's release letter (1.1.1w: 23), 0 for none.
	letter byte
}

const (
	maxParts    = 4
	maxCounters = 4
	// Registries cap tags at 128 characters; longer input is not a tag.
	maxTagLen = 128
	// Six digits and more in the first part is a date or a CI build number.
	timestampDigits = 6
	minShaLen       = 7
)

// String returns the tag as it was given to ParseTag.
func (a Tag) String() string { return a.original }

// Prerelease reports whether the tag is a pre-release (rc, beta, dev ...).
func (a Tag) Prerelease() bool { return a.pre != "" }

// Comparable reports whether both tags have the same shape; only those can be
// updates of each other (-alpine never becomes -bookworm, 1.25 never 1.25.3).
func (a Tag) Comparable(b Tag) bool {
	return a.parts == b.parts && a.timestamp == b.timestamp &&
		a.prefix == b.prefix && a.family == b.family
}

// Compare orders tags of one shape: numeric parts, then pre-release
// (a pre-release sorts before its release), then the release letter, then
// build counters.
// 0 means the same version spelled alike or differently (18.04 and 18.4).
// The result for tags of different shapes is meaningless.
func (a Tag) Compare(b Tag) int {
	for i := range maxParts {
		if c := cmp.Compare(a.nums[i], b.nums[i]); c != 0 {
			return c
		}
	}
	if c := comparePrerelease(a.pre, b.pre); c != 0 {
		return c
	}
	if c := cmp.Compare(a.letter, b.letter); c != 0 {
		return c
	}
	return slices.Compare(a.build[:], b.build[:])
}

// comparePrerelease applies semver's precedence (a release ranks above its
// pre-releases, identifiers compare part by part, numbers numerically) to
// normalized pre-releases. The semver values are built only here, when two
// tags tie on their numbers, because building one per parsed tag would
// dominate the cost of Decide.
func comparePrerelease(a, b string) int {
	if a == b {
		return 0
	}
	return semver.New(0, 0, 0, a, "").Compare(semver.New(0, 0, 0, b, ""))
}

func (a Tag) sameNumbers(b Tag) bool { return a.nums == b.nums }

// extends reports whether a is a more specific version of the floating tag
// b: 16.4 extends 16, 7.2.5-alpine extends 7.2-alpine.
func (a Tag) extends(b Tag) bool {
	if a.parts <= b.parts || a.prefix != b.prefix || a.family != b.family {
		return false
	}
	return slices.Equal(a.nums[:b.parts], b.nums[:b.parts])
}

// ParseTag splits a tag into prefix, numeric version (1 to 4 parts),
// pre-release and suffix. It returns false for a tag that fits no version
// shape: no digits (latest, main), too many parts, a git sha where the
// version would be (sha-0a1b2c3, 0a1b2c3d, an all-digit 1234567), or a pull
// request (pr-42).
//
// Some families have a shape of their own, marked at the head of the family
// with '@', which no tag can hold, so they only compare among themselves:
//
//	2024-01-25, RELEASE.2024-09-22T00-33-43Z → a date (and a time): @d
//	20240922-003343                          → a compact date and a time: @t
//	8u412-b08                                → Java's 8, update 412 (as 8.0.412): @u
//
// OpenSSL's letter releases (1.1.1w) keep the shape of 1.1.1: the letter
// orders them after it.
func ParseTag(s string) (Tag, bool) {
	if s == "" || len(s) > maxTagLen || hasShaPrefix(s) {
		return Tag{}, false
	}
	start := versionStart(s)
	if start < 0 || isSha(tokenAt(s, start)) {
		return Tag{}, false
	}
	t := Tag{original: s, prefix: s[:start]}

	var marker string
	pos := start
	dated := start+10 <= len(s) && s[start+4] == '-' // quick: most tags are no date
	if dated {
		pos, dated = t.dashedDate(s, start)
	}
	if dated {
		marker = "@d"
		if end, layout, ok := t.clock(s, pos); ok {
			marker, pos = marker+layout, end
		}
	} else {
		var ok bool
		if pos, ok = t.numbers(s, start); !ok {
			return Tag{}, false
		}
		switch {
		case t.timestamp && pos-start == 8:
			if end, layout, ok := t.clock(s, pos); ok {
				marker, pos = "@t"+layout, end
			}
		case t.parts == 1 && pos+1 < len(s) && s[pos] == 'u' && isDigit(s[pos+1]):
			if end, ok := t.javaUpdate(s, pos); ok {
				marker, pos = "@u", end
			}
		case t.parts >= 2 && pos < len(s) && 'a' <= s[pos] && s[pos] <= 'z' && (pos+1 == len(s) || isTokenSeparator(s[pos+1])):
			t.letter = s[pos] - 'a' + 1
			pos++
		}
	}
	if t.timestamp {
		pos = t.respin(s, pos)
	}

	pre, numbered, rest := splitPrerelease(s[pos:])
	if pre == "" {
		pre, rest = trailingPrerelease(rest)
		numbered = pre != ""
	}
	t.pre, t.preNumbered = pre, numbered
	t.family = t.splitSuffix(rest)
	if marker != "" {
		t.family = marker + t.family
	}
	// A bare nightly right after the version (1.22-nightly-rootless), which
	// splitPrerelease left in the suffix.
	t.rolling = pre == "" && len(rest) >= 8 && isSeparator(rest[0]) && strings.EqualFold(rest[1:8], "nightly") &&
		(len(rest) == 8 || isSeparator(rest[8]))
	return t, true
}

// numbers reads the dotted numeric version at s[pos:], 1 to 4 parts, and
// returns where it ends.
func (t *Tag) numbers(s string, pos int) (int, bool) {
	for {
		// By hand rather than strconv.ParseUint: this runs for every tag of
		// every repository, and the general parser costs a tenth of Decide.
		end := pos
		var n uint64
		for end < len(s) && isDigit(s[end]) {
			d := uint64(s[end] - '0')
			if n > (math.MaxUint64-d)/10 {
				return 0, false // too large for a version number
			}
			n = n*10 + d
			end++
		}
		if end == pos {
			return 0, false
		}
		if t.parts == 0 && end-pos >= timestampDigits {
			if !isTimestamp(s[pos:end]) {
				// An all-digit short commit (1234567) is no date, and no
				// version either.
				return 0, false
			}
			t.timestamp = true
		}
		t.nums[t.parts] = n
		t.parts++
		pos = end
		if t.timestamp || pos+1 >= len(s) || s[pos] != '.' || !isDigit(s[pos+1]) {
			return pos, true
		}
		if t.parts == maxParts {
			return 0, false
		}
		pos++
	}
}

// isTimestamp tells a date or build stamp in the first part of a version
// (jammy-20240125, a 6-digit build number, 202409220033) from a commit
// abbreviated to digits only: 7 digits and more must read as a date
// (YYYYMMDD, then hours, minutes, seconds) or as Unix seconds.
func isTimestamp(digits string) bool {
	switch len(digits) {
	case 6:
		return true
	case 10:
		if digits[0] == '1' { // Unix seconds, 2001 to 2033
			return true
		}
	}
	if len(digits) < 8 || len(digits) > 14 || len(digits)%2 != 0 {
		return false
	}
	num := func(i, n int) int { v, _ := strconv.Atoi(digits[i : i+n]); return v }
	if y, m, d := num(0, 4), num(4, 2), num(6, 2); y < 1970 || y > 2099 || m < 1 || m > 12 || d < 1 || d > 31 {
		return false
	}
	for i, limit := 8, 23; i < len(digits); i, limit = i+2, 59 {
		if num(i, 2) > limit {
			return false
		}
	}
	return true
}

// isDashedDate reports whether s[pos:] starts with a date YYYY-MM-DD.
func isDashedDate(s string, pos int) bool {
	end := pos + 10
	if end > len(s) || s[pos+4] != '-' || s[pos+7] != '-' || end < len(s) && isDigit(s[end]) {
		return false
	}
	var digits [8]byte
	copy(digits[:4], s[pos:pos+4])
	copy(digits[4:6], s[pos+5:pos+7])
	copy(digits[6:], s[pos+8:end])
	return isAllDigits(string(digits[:])) && isTimestamp(string(digits[:]))
}

// dashedDate reads YYYY-MM-DD at s[pos:] as a 3-part timestamp.
func (t *Tag) dashedDate(s string, pos int) (int, bool) {
	if !isDashedDate(s, pos) {
		return 0, false
	}
	for i, part := range []string{s[pos : pos+4], s[pos+5 : pos+7], s[pos+8 : pos+10]} {
		t.nums[i], _ = strconv.ParseUint(part, 10, 64)
	}
	t.parts, t.timestamp = 3, true
	return pos + 10, true
}

// clock reads the time of day that may follow a date: T00-33-43Z,
// _0033, -003343. It becomes the next numeric part (hhmmss or hhmm); layout
// is its punctuation with digits as '#', part of the tag's shape.
func (t *Tag) clock(s string, pos int) (end int, layout string, ok bool) {
	if pos+1 >= len(s) || (s[pos] != 'T' && s[pos] != '_' && s[pos] != '-') || !isDigit(s[pos+1]) {
		return 0, "", false
	}
	var digits, shape []byte
	shape = append(shape, s[pos])
	end = pos + 1
scan:
	for ; end < len(s); end++ {
		switch c := s[end]; {
		case isDigit(c):
			digits = append(digits, c)
			shape = append(shape, '#')
		case (c == '-' || c == '.') && end+1 < len(s) && isDigit(s[end+1]) && len(digits)%2 == 0 && len(digits) > 0 && len(digits) < 6:
			shape = append(shape, c) // T00-33-43: hours, minutes and seconds apart
		default:
			break scan
		}
	}
	if end < len(s) && s[end] == 'Z' {
		shape = append(shape, 'Z')
		end++
	}
	if len(digits) != 4 && len(digits) != 6 || end < len(s) && !isSeparator(s[end]) {
		return 0, "", false
	}
	for i, limit := 0, 23; i < len(digits); i, limit = i+2, 59 {
		if v := int(digits[i]-'0')*10 + int(digits[i+1]-'0'); v > limit {
			return 0, "", false
		}
	}
	t.nums[t.parts], _ = strconv.ParseUint(string(digits), 10, 64)
	t.parts++
	return end, string(shape), true
}

// javaUpdate reads Java 8's u<update> (8u412) as 8.0.412, so that a new
// update is a patch.
func (t *Tag) javaUpdate(s string, pos int) (int, bool) {
	end := pos + 1
	for end < len(s) && isDigit(s[end]) {
		end++
	}
	if end-pos > 6 || end < len(s) && !isTokenSeparator(s[end]) {
		return 0, false
	}
	t.nums[2], _ = strconv.ParseUint(s[pos+1:end], 10, 64)
	t.parts = 3
	return end, true
}

// respin reads the .N an Ubuntu image gets when the same snapshot is built
// again (noble-20240827.1): a build counter after the timestamp, so the
// respin sorts after the snapshot and before the next one.
func (t *Tag) respin(s string, pos int) int {
	if pos+1 >= len(s) || s[pos] != '.' || !isDigit(s[pos+1]) {
		return pos
	}
	end := pos + 1
	for end < len(s) && isDigit(s[end]) {
		end++
	}
	n, err := strconv.ParseUint(s[pos+1:end], 10, 64)
	if err != nil || end-pos > 10 || end < len(s) && !isSeparator(s[end]) {
		return pos
	}
	t.build[0] = n
	return end
}

// trailingPrerelease takes a numbered pre-release off the end of a suffix
// that names a variant first (1.2.3-alpine-rc1): the variant stays the
// shape, the rc1 orders it. A bare word there (-alpine-dev) may name the
// variant itself and is left alone.
func trailingPrerelease(suffix string) (pre, rest string) {
	if !containsDigit(suffix) {
		return "", suffix // the common -alpine: no number, no numbered pre-release
	}
	cut := len(suffix) - 1
	for cut > 0 && !isTokenSeparator(suffix[cut]) {
		cut--
	}
	if cut <= 0 {
		return "", suffix
	}
	p, numbered, after := splitPrerelease(suffix[cut:])
	if p == "" || !numbered || after != "" {
		return "", suffix
	}
	return p, suffix[:cut]
}

// versionStart finds where the version begins: the first number that starts
// a '-' or '_' separated token, optionally after a 'v' (1.2.3, v1.2.3,
// version-1.2.3, amd64-4.0.2.1-ls230), or a date after a '.'
// (RELEASE.2024-09-22T00-33-43Z). A number glued to a word names a
// variant, not a version of the image (alpine3.20, iron-alpine3.19,
// amd64-latest): -1 then, as when there is no digit.
func versionStart(s string) int {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			continue
		}
		if i > 0 && s[i-1] == '.' && i+10 <= len(s) && s[i+4] == '-' && isDashedDate(s, i) {
			return i // MinIO's RELEASE.2024-09-22T00-33-43Z
		}
		atToken := i == 0 || s[i-1] == '-' || s[i-1] == '_'
		afterV := i > 0 && (s[i-1] == 'v' || s[i-1] == 'V') && (i == 1 || s[i-2] == '-' || s[i-2] == '_')
		if atToken || afterV {
			return i
		}
		for i+1 < len(s) && isDigit(s[i+1]) {
			i++
		}
	}
	return -1
}

// splitPrerelease takes a leading pre-release off what follows the numbers:
// attached python/postgres style (b1, rc2, beta1), or after '-' or '.'
// (-rc1, -beta.2, -SNAPSHOT, .dev20241005). It returns the pre-release
// normalized for semver as "<rank>.<word>[.<number>...]" so that semver's
// precedence puts dev < alpha < beta < preview < rc and rc2 < rc10.
func splitPrerelease(rest string) (pre string, numbered bool, suffix string) {
	if rest == "" {
		return "", false, rest
	}
	i := 0
	attached := true
	if rest[0] == '-' || rest[0] == '.' {
		i, attached = 1, false
	}
	j := i
	for j < len(rest) && isLetter(rest[j]) {
		j++
	}
	k := j
	for k < len(rest) && isDigit(rest[k]) {
		k++
	}
	hasNumber := k > j
	for k+1 < len(rest) && rest[k] == '.' && isDigit(rest[k+1]) {
		k++
		for k < len(rest) && isDigit(rest[k]) {
			k++
		}
		hasNumber = true
	}
	if k < len(rest) && !isSeparator(rest[k]) {
		return "", false, rest // the word runs on into something else (-rc1x): a suffix
	}
	word, rank, ok := prereleaseWord(strings.ToLower(rest[i:j]), attached, hasNumber)
	if !ok || word == "nightly" && !hasNumber {
		// A bare -nightly is a channel of its own, republished every night
		// (Gitea's 1.22-nightly): not older than 1.22, never offered to it.
		return "", false, rest
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(rank))
	b.WriteByte('.')
	b.WriteString(word)
	for n := range strings.SplitSeq(rest[j:k], ".") {
		if n == "" {
			continue
		}
		b.WriteByte('.')
		// semver treats 01 and 1 as different yet equal-valued identifiers
		// and then orders them inconsistently; strip the zeros.
		if trimmed := strings.TrimLeft(n, "0"); trimmed != "" {
			b.WriteString(trimmed)
		} else {
			b.WriteByte('0')
		}
	}
	return b.String(), hasNumber, rest[k:]
}

// prereleaseWord maps a word found right after the version to its canonical
// spelling and precedence. Single letters (python's 3.8.0b1) count only when
// attached to the version and followed by a number, so -a or -b suffixes stay
// suffixes.
func prereleaseWord(word string, attached, hasNumber bool) (canonical string, rank int, ok bool) {
	switch word {
	case "dev", "devel", "develop", "snapshot", "nightly", "canary", "unstable", "experimental", "next", "insider", "ea":
		return word, 0, true
	case "alpha":
		return "alpha", 1, true
	case "beta":
		return "beta", 2, true
	case "pre", "preview":
		return "preview", 3, true
	case "rc":
		return "rc", 4, true
	case "a", "b":
		if !attached || !hasNumber {
			return "", 0, false
		}
		if word == "a" {
			return "alpha", 1, true
		}
		return "beta", 2, true
	}
	return "", 0, false
}

// splitSuffix returns the suffix family: the suffix with build counters
// replaced by '#' (their values go to t.build) and git shas by '*', so
// 4.0.2.1-ls230 and 4.0.2.1-ls231 share a shape while -alpine3.19 and
// -alpine3.20 do not.
func (t *Tag) splitSuffix(suffix string) string {
	if !containsDigit(suffix) {
		return suffix
	}
	// Most suffixes (-alpine3.20, -nanoserver-1809) come through unchanged;
	// family is only allocated once a token is rewritten.
	var family []byte
	counters := 0
	if t.timestamp {
		counters = 1 // build[0] is the respin
	}
	first := true
	for start := 0; start < len(suffix); {
		if isTokenSeparator(suffix[start]) {
			family = appendIfCopying(family, suffix[start])
			start++
			continue
		}
		end := start
		for end < len(suffix) && !isTokenSeparator(suffix[end]) {
			end++
		}
		token := suffix[start:end]
		label, n, isCounter := buildCounter(token, first)
		first = false
		isCounter = isCounter && counters < maxCounters
		// A commit or a long serial (plex's 424562606) identifies a build
		// without ordering it; keep the tag's shape, drop the value.
		isID := !isCounter && (isSha(token) || len(token) >= minShaLen && isAllDigits(token))
		if (isCounter || isID) && family == nil {
			family = append(make([]byte, 0, len(suffix)), suffix[:start]...)
		}
		switch {
		case isCounter:
			t.build[counters] = n
			counters++
			family = append(append(family, label...), '#')
		case isID:
			family = append(family, '*')
		case family != nil:
			family = append(family, token...)
		}
		start = end
	}
	if family == nil {
		return suffix
	}
	return string(family)
}

// appendIfCopying appends c once splitSuffix has started rewriting.
func appendIfCopying(family []byte, c byte) []byte {
	if family == nil {
		return nil
	}
	return append(family, c)
}

// buildCounter recognizes packaging counters: LinuxServer's ls230, Alpine's
// r1, Java's build b08, and short bare numbers that are either the first
// suffix token (Debian-style 1.2.3-1) or zero-padded (Grafana's
// -security-01). Other bare numbers are more likely names (nanoserver-1809,
// bitnami's debian-12).
func buildCounter(token string, first bool) (label string, n uint64, ok bool) {
	digits := token
	switch {
	case strings.HasPrefix(token, "ls"):
		digits = token[2:]
	case strings.HasPrefix(token, "r"), strings.HasPrefix(token, "b"):
		digits = token[1:]
	case len(token) > 3 || !first && token[0] != '0':
		return "", 0, false
	}
	if digits == "" || len(digits) > 9 || !isAllDigits(digits) {
		return "", 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return token[:len(token)-len(digits)], n, err == nil
}

// hasShaPrefix catches CI tags that name a commit (sha-0a1b2c3, git-1234567)
// even when the sha happens to be all digits, and those that name a pull or
// merge request (pr-42): numbered, but not versions.
func hasShaPrefix(s string) bool {
	switch s[0] | 0x20 { // most tags start with a digit or v: done
	case 's', 'g', 'c', 'p', 'm':
	default:
		return false
	}
	for _, p := range [...]string{"sha-", "sha256-", "git-", "commit-", "pr-", "pr_", "pull-", "pull_", "mr-"} {
		if len(s) > len(p) && strings.EqualFold(s[:len(p)], p) {
			return true
		}
	}
	return false
}

// isSha reports whether a token looks like an abbreviated git commit: 7 or
// more hex digits with at least one letter, optionally git describe's "g".
func isSha(token string) bool {
	if len(token) > minShaLen && token[0] == 'g' {
		token = token[1:]
	}
	if len(token) < minShaLen {
		return false
	}
	letters := false
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case isDigit(c):
		case 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			letters = true
		default:
			return false
		}
	}
	return letters
}

// tokenAt returns the '-', '_' or '.' separated token around s[i].
func tokenAt(s string, i int) string {
	start, end := i, i
	for start > 0 && !isSeparator(s[start-1]) {
		start--
	}
	for end < len(s) && !isSeparator(s[end]) {
		end++
	}
	return s[start:end]
}

func containsDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			return true
		}
	}
	return false
}

func isAllDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool          { return '0' <= c && c <= '9' }
func isLetter(c byte) bool         { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isSeparator(c byte) bool      { return c == '-' || c == '_' || c == '.' }
func isTokenSeparator(c byte) bool { return c == '-' || c == '_' }
