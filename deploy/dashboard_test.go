package deploy

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// declaredMetrics reads every Prometheus metric family the services
// declare, from their source: the Name of each prometheus.*Opts composite
// literal. The value is true for histograms (which expose _bucket, _sum and
// _count series).
func declaredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(repoPath("services"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" {
				return true
			}
			for _, e := range lit.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if k, ok := kv.Key.(*ast.Ident); !ok || k.Name != "Name" {
					continue
				}
				if v, ok := kv.Value.(*ast.BasicLit); ok && v.Kind == token.STRING {
					name, _ := strconv.Unquote(v.Value)
					out[name] = sel.Sel.Name == "HistogramOpts"
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var metricRE = regexp.MustCompile(`\bams_[a-z0-9_]+\b`)

// The dashboard in deploy/dashboards is valid Grafana JSON whose every
// query names metrics the services declare, and it has a panel for every
// metric family of the services.
func TestDashboardQueriesDeclaredMetrics(t *testing.T) {
	t.Parallel()
	declared := declaredMetrics(t)
	for _, spec := range []string{ // spec 3.8: the minimum the gateways expose
		"ams_connections", "ams_streams_live", "ams_frames_in_total", "ams_frames_out_total",
		"ams_closes_total", "ams_replay_frames_total", "ams_http_requests_total", "ams_http_request_duration_seconds",
	} {
		if _, ok := declared[spec]; !ok {
			t.Errorf("the services do not declare %s (spec 3.8); declared: %v", spec, keys(declared))
		}
	}

	paths, err := filepath.Glob(repoPath("deploy/dashboards/*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no dashboards in deploy/dashboards: %v", err)
	}
	used := map[string]bool{}
	for _, path := range paths {
		raw := readRepoFile(t, "deploy/dashboards/"+filepath.Base(path))
		var d dashboard
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: not valid JSON: %v", path, err)
		}
		if d.Title == "" || d.UID == "" {
			t.Errorf("%s: title %q uid %q: both are required", path, d.Title, d.UID)
		}
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
		}
		if !vars["datasource"] {
			t.Errorf("%s: no datasource variable: the dashboard must not pin a data source", path)
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d twice", path, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: panel %q: bad gridPos %+v", path, p.Title, p.GridPos)
			}
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q: datasource %+v, want prometheus ${datasource}", path, p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", path, p.Title)
			}
			for _, tg := range p.Targets {
				if msg := checkPromQL(tg.Expr); msg != "" {
					t.Errorf("%s: panel %q query %s: %s", path, p.Title, tg.RefID, msg)
				}
				for _, name := range metricRE.FindAllString(tg.Expr, -1) {
					family, ok := familyOf(declared, name)
					if !ok {
						t.Errorf("%s: panel %q queries %s, which no service declares", path, p.Title, name)
						continue
					}
					used[family] = true
				}
				for _, v := range regexp.MustCompile(`\$(\w+)`).FindAllStringSubmatch(tg.Expr, -1) {
					if !vars[v[1]] && !strings.HasPrefix(v[1], "__") {
						t.Errorf("%s: panel %q uses undefined variable $%s", path, p.Title, v[1])
					}
				}
			}
		}
	}
	for name := range declared {
		if strings.HasPrefix(name, "ams_") && !used[name] {
			t.Errorf("no dashboard panel shows %s", name)
		}
	}
}

// familyOf maps a series name to its declared family: itself, or a
// histogram's _bucket, _sum or _count.
func familyOf(declared map[string]bool, name string) (string, bool) {
	if _, ok := declared[name]; ok {
		return name, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && declared[base] {
			return base, true
		}
	}
	return "", false
}

// checkPromQL catches the mistakes a hand-edited query makes most: empty,
// unbalanced brackets or quotes, a rate over no range.
func checkPromQL(expr string) string {
	if strings.TrimSpace(expr) == "" {
		return "empty"
	}
	var stack []rune
	inQuote := false
	for _, r := range expr {
		if inQuote {
			if r == '"' {
				inQuote = false
			}
			continue
		}
		switch r {
		case '"':
			inQuote = true
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			open := map[rune]rune{')': '(', ']': '[', '}': '{'}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return "unbalanced " + string(r)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if inQuote || len(stack) > 0 {
		return "unclosed bracket or quote"
	}
	for _, fn := range []string{"rate(", "increase("} {
		for rest := expr; ; {
			i := strings.Index(rest, fn)
			if i < 0 {
				break
			}
			rest = rest[i+len(fn):]
			end := strings.IndexByte(rest, ')')
			if end < 0 || !strings.Contains(rest[:end], "[") {
				return fn + ") without a range"
			}
		}
	}
	return ""
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
