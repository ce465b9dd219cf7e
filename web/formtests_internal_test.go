package web

import (
	"testing"
	"time"

	"github.com/tagwatch/tagwatch/registries"
)

func TestFormTestsExpireAndStayBounded(t *testing.T) {
	var f formTests
	inst := func(name, password string) *registries.Instance {
		return &registries.Instance{Kind: "custom", Name: name, Values: registries.Values{"url": "http://r", "login": "a", "password": password}}
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f.remember(inst("a", "p1"), testView{OK: true, TestedAt: now}, now)
	if _, ok := f.find(inst("a", "p1"), now.Add(formTestTTL-time.Second)); !ok {
		t.Error("a fresh test is not found")
	}
	if _, ok := f.find(inst("a", "p1"), now.Add(formTestTTL+time.Second)); ok {
		t.Error("an expired test is still found")
	}
	for _, other := range []*registries.Instance{inst("a", "p2"), inst("b", "p1"),
		{Kind: "custom", Name: "a", Values: registries.Values{"url": "http://r", "login": "ap", "password": "1"}}} {
		if _, ok := f.find(other, now); ok {
			t.Errorf("%s %v finds the test of other settings", other.Name, other.Values)
		}
	}
	for i := range 2 * maxFormTests {
		f.remember(inst("n", string(rune('a'+i%26))+string(rune('a'+i/26))), testView{}, now.Add(time.Duration(i)*time.Millisecond))
	}
	if len(f.byFP) > maxFormTests {
		t.Errorf("%d tests kept, at most %d", len(f.byFP), maxFormTests)
	}
}
