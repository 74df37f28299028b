package viewer

import (
	"strings"
	"testing"
)

// The assembled page carries the style and the script once each, exactly
// as embedded, and the policy admits them by hash and nothing else inline.
func TestAssemble(t *testing.T) {
	t.Parallel()
	doc := string(page)
	for _, c := range []struct{ tag, body string }{{"style", pageCSS}, {"script", pageJS}} {
		if n := strings.Count(doc, "<"+c.tag+">"); n != 1 {
			t.Errorf("%d <%s> elements, want 1", n, c.tag)
		}
		if !strings.Contains(doc, "<"+c.tag+">"+c.body+"</"+c.tag+">") {
			t.Errorf("<%s> does not hold the embedded file", c.tag)
		}
		if !strings.Contains(csp, c.tag+"-src "+hash(c.body)+";") {
			t.Errorf("policy %q lacks the %s hash", csp, c.tag)
		}
	}
	for _, marker := range []string{"/*STYLE*/", "/*SCRIPT*/"} {
		if strings.Contains(doc, marker) {
			t.Errorf("page still holds %s", marker)
		}
	}
	// Payloads become text only: the script never parses HTML.
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function("} {
		if strings.Contains(pageJS, sink) {
			t.Errorf("viewer.js uses %s", sink)
		}
	}
	if strings.Contains(pageCSS, "</style") || strings.Contains(pageJS, "</script") {
		t.Error("an embedded file closes its element early")
	}
}
