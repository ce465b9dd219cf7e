package watcher

import (
	"slices"
	"strconv"
	"testing"
)

// FuzzTagOrder checks that parsing never panics and that, within a shape,
// Compare is a total order: otherwise "the newest tag" would depend on the
// order a registry lists tags in.
func FuzzTagOrder(f *testing.F) {
	tags := allCorpusTags(f)
	for i, tag := range tags {
		f.Add(tag, tags[(i+1)%len(tags)], tags[(i+7)%len(tags)])
	}
	// Triples of one shape, so the mutator starts from inputs that reach the
	// ordering checks.
	shapes := map[[4]string][]string{}
	for _, s := range tags {
		if tag, ok := ParseTag(s); ok {
			key := [4]string{tag.prefix, strconv.Itoa(tag.parts), tag.family, strconv.FormatBool(tag.timestamp)}
			shapes[key] = append(shapes[key], s)
		}
	}
	for _, same := range shapes {
		for i := 0; i+2 < len(same); i += 3 {
			f.Add(same[i+2], same[i], same[i+1])
		}
	}
	for _, odd := range [][3]string{
		{"1.0.0-rc.01", "1.0.0-rc.1", "1.0.0-rc1"},
		{"18.04", "18.4", "18.004"},
		{"1.2.3-ls01", "1.2.3-ls1", "1.2.3-ls001"},
		{"1.0.0-RC1", "1.0.0-rc1", "1.0.0-Rc.1"},
		{"1.0.0-rc.99999999999999999999", "1.0.0-rc.1", "1.0.0-rc.a"},
		{"v", "v-", "-1"},
		{"1.", "1..2", ".1"},
	} {
		f.Add(odd[0], odd[1], odd[2])
	}

	f.Fuzz(func(t *testing.T, a, b, c string) {
		var parsed []Tag
		for _, s := range []string{a, b, c} {
			tag, ok := ParseTag(s)
			if !ok {
				continue
			}
			if tag.String() != s {
				t.Fatalf("ParseTag(%q).String() = %q", s, tag.String())
			}
			if again, _ := ParseTag(s); again != tag {
				t.Fatalf("ParseTag(%q) is not deterministic", s)
			}
			if tag.Compare(tag) != 0 || !tag.Comparable(tag) {
				t.Fatalf("%q is not equal to itself", s)
			}
			parsed = append(parsed, tag)
		}
		for _, x := range parsed {
			for _, y := range parsed {
				if x.Comparable(y) != y.Comparable(x) {
					t.Fatalf("Comparable(%q, %q) is not symmetric", x, y)
				}
				if !x.Comparable(y) {
					continue
				}
				if xy, yx := x.Compare(y), y.Compare(x); xy != -yx || xy < -1 || xy > 1 {
					t.Fatalf("Compare(%q, %q) = %d but Compare(%q, %q) = %d", x, y, xy, y, x, yx)
				}
				for _, z := range parsed {
					if !y.Comparable(z) {
						continue
					}
					if !x.Comparable(z) {
						t.Fatalf("Comparable is not transitive over %q, %q, %q", x, y, z)
					}
					if xy, yz, xz := x.Compare(y), y.Compare(z), x.Compare(z); xy <= 0 && yz <= 0 && xz != min(xy, yz) {
						t.Fatalf("Compare is not transitive: %q %+d %q %+d %q but %q %+d %q", x, xy, y, yz, z, x, xz, z)
					}
				}
			}
		}

		// Decide on the same input must not panic and offers only a newer
		// tag of the list, or the current one with kind none.
		got := Decide(a, []string{b, c}, TagOptions{})
		if got.Kind == UpdateNone {
			if got.Tag != a {
				t.Fatalf("Decide(%q) = %q with kind none", a, got.Tag)
			}
			return
		}
		if !slices.Contains([]string{b, c}, got.Tag) {
			t.Fatalf("Decide(%q, %q, %q) offered %q, not in the list", a, b, c, got.Tag)
		}
		from, _ := ParseTag(a)
		to, _ := ParseTag(got.Tag)
		if !from.Comparable(to) || from.Compare(to) >= 0 {
			t.Fatalf("Decide(%q) offered %q, which is not newer", a, got.Tag)
		}
	})
}
