package benchkit

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// FanoutParams configures the fanout scenario.
type FanoutParams struct {
	Shape
	// Rate, if set, runs only fixed-rate phases at this total written
	// rate; else closed loops find the maximum rate, then fixed-rate
	// phases run at half of the two-gateway maximum.
	Rate float64
}

// loadRow is one column of a comparison: a label and its result.
type loadCol struct {
	label string
	res   *LoadResult
}

// loadTable compares load results: raw NATS first, then gateways.
func loadTable(title string, cols []loadCol) *Table {
	t := &Table{Title: title, Header: []string{"figure"}}
	raw := cols[0].res
	for i, c := range cols {
		t.Header = append(t.Header, c.label)
		if i > 0 {
			t.Header = append(t.Header, "vs raw")
		}
	}
	row := func(name string, cell func(r *LoadResult) string, cmp func(r, raw *LoadResult) string) {
		cells := []string{name}
		for i, c := range cols {
			cells = append(cells, cell(c.res))
			if i > 0 {
				cells = append(cells, cmp(c.res, raw))
			}
		}
		t.Row(cells...)
	}
	none := func(_, _ *LoadResult) string { return "" }
	row("delivered tokens/s", func(r *LoadResult) string { return rate(r.DeliveredRate()) },
		func(r, raw *LoadResult) string { return ratio(r.DeliveredRate(), raw.DeliveredRate()) })
	row("written tokens/s", func(r *LoadResult) string { return rate(r.WrittenRate()) },
		func(r, raw *LoadResult) string { return ratio(r.WrittenRate(), raw.WrittenRate()) })
	row("latency p50 / p90 / p99 / p99.9 ms", func(r *LoadResult) string { return percentiles(r.Lat) },
		func(r, raw *LoadResult) string {
			return fmt.Sprintf("p99 %+.2f ms", float64(r.Lat.Percentile(0.99)-raw.Lat.Percentile(0.99))/1e6)
		})
	row("latency max ms", func(r *LoadResult) string { return ms(r.Lat.Max()) }, none)
	row("lost / dup / order / app dup", func(r *LoadResult) string {
		return fmt.Sprintf("%d / %d / %d / %d", r.Totals.Lost, r.Totals.Dups, r.Totals.OrderViolations, r.Totals.AppDups)
	}, none)
	row("connections closed", func(r *LoadResult) string { return closesSummary(r.Closes) }, none)
	row("writers held by a reader a window behind, ms", func(r *LoadResult) string {
		return fmt.Sprintf("%.0f", float64(r.WindowHeld)/1e6)
	}, none)
	row("gateway CPU % of a core", func(r *LoadResult) string {
		if len(r.GatewayCPU) == 0 {
			return "–"
		}
		var s []string
		for _, c := range r.GatewayCPU {
			s = append(s, fmt.Sprintf("%.0f", c))
		}
		return strings.Join(s, " + ")
	}, none)
	row("NATS server CPU %", func(r *LoadResult) string {
		if r.NATSCPU < 0 {
			return "(in kit)"
		}
		return fmt.Sprintf("%.0f", r.NATSCPU)
	}, none)
	row("kit CPU % (clients, services)", func(r *LoadResult) string { return fmt.Sprintf("%.0f", r.KitCPU) }, none)
	waitRow := func(name string, f func(CoreWait) string) {
		row(name, func(r *LoadResult) string {
			v := func(w CoreWait) string {
				if w.Pct < 0 {
					return "?"
				}
				return f(w)
			}
			gw := "–"
			if len(r.GatewayWait) > 0 {
				var s []string
				for _, w := range r.GatewayWait {
					s = append(s, v(w))
				}
				gw = strings.Join(s, " + ")
			}
			nats := v(r.NATSWait)
			if r.NATSCPU < 0 {
				nats = "(in kit)"
			}
			return gw + " / " + nats + " / " + v(r.KitWait)
		}, none)
	}
	waitRow("waiting for a core, % of the time: gateways / NATS / kit", func(w CoreWait) string {
		return fmt.Sprintf("%.0f", w.Pct)
	})
	waitRow("waiting for a core, µs per run: gateways / NATS / kit", func(w CoreWait) string {
		return fmt.Sprintf("%.0f", float64(w.PerRun)/1e3)
	})
	row("CPU µs per delivery: gateways / all", func(r *LoadResult) string {
		d := r.DeliveredRate()
		if d == 0 {
			return "–"
		}
		var gw float64
		for _, c := range r.GatewayCPU {
			gw += c
		}
		all := gw + r.KitCPU + max(r.NATSCPU, 0)
		return fmt.Sprintf("%.2f / %.2f", gw/100/d*1e6, all/100/d*1e6)
	}, func(r, raw *LoadResult) string {
		var gw float64
		for _, c := range r.GatewayCPU {
			gw += c
		}
		a := (gw + r.KitCPU + max(r.NATSCPU, 0)) / r.DeliveredRate()
		b := (raw.KitCPU + max(raw.NATSCPU, 0)) / raw.DeliveredRate()
		return ratio(a, b)
	})
	t.Note("Each phase starts after the file system's dirty pages are written to disk (sync), so that JetStream's writes in an earlier phase are not written back during it.")
	return t
}

func closesSummary(closes []string) string {
	if len(closes) == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (first: %s)", len(closes), closes[0])
}

// Fanout runs the fanout scenario: raw NATS, one gateway and two gateways
// (writers on the first, readers on the second) with the same shape.
func Fanout(ctx context.Context, env *Env, p FanoutParams) error {
	sys, err := env.StartSystem(ctx, 2)
	if err != nil {
		return err
	}
	defer sys.Close()
	gw0, gw1 := sys.Gateways[0], sys.Gateways[1]
	load := env.Load()

	run3 := func(sh Shape, tag string) ([]loadCol, error) {
		raw, err := RunNATSLoad(ctx, env, sys, sh, "fanout raw NATS "+tag)
		if err != nil {
			return nil, err
		}
		one, err := RunAMSLoad(ctx, env, sys, sh, gw0, gw0, "fanout 1 gateway "+tag)
		if err != nil {
			return nil, err
		}
		two, err := RunAMSLoad(ctx, env, sys, sh, gw0, gw1, "fanout 2 gateways "+tag)
		if err != nil {
			return nil, err
		}
		return []loadCol{{"raw NATS", raw}, {"1 gateway", one}, {"2 gateways", two}}, nil
	}

	sh := p.Shape
	var closed []loadCol
	rateHalf := p.Rate
	if p.Rate == 0 {
		sh.Rate = 0
		if closed, err = run3(sh, "closed loop"); err != nil {
			return err
		}
		t := loadTable("fanout, closed loop: "+sh.String(), closed)
		t.Note("load average before: %s, after: %s", load, env.Load())
		t.Print(env.Out)
		rateHalf = closed[2].res.WrittenRate() / 2
		if rateHalf < 1 {
			return fmt.Errorf("the two-gateway closed loop wrote nothing: %s", closesSummary(closed[2].res.Closes))
		}
	}
	load = env.Load()
	sh.Rate = rateHalf
	fixed, err := run3(sh, "fixed rate")
	if err != nil {
		return err
	}
	t := loadTable("fanout, fixed rate (half of the 2-gateway maximum): "+sh.String(), fixed)
	t.Note("load average before: %s, after: %s", load, env.Load())
	t.Print(env.Out)

	if closed != nil {
		raw, two := closed[0].res, closed[2].res
		env.Target(Target{
			Name:     "fanout throughput",
			Goal:     "fan-out through two gateways ≥ 0.5× raw NATS tokens/s",
			Measured: fmt.Sprintf("%s vs %s delivered tokens/s = %s", rate(two.DeliveredRate()), rate(raw.DeliveredRate()), ratio(two.DeliveredRate(), raw.DeliveredRate())),
			Met:      two.DeliveredRate() >= 0.5*raw.DeliveredRate() && two.Totals.Clean(),
		})
	}
	raw, two := fixed[0].res, fixed[2].res
	d := two.Lat.Percentile(0.99) - raw.Lat.Percentile(0.99)
	env.Target(Target{
		Name: "fanout latency",
		Goal: "p99 publish → deliver at half the maximum rate within 2 ms of raw NATS p99",
		Measured: fmt.Sprintf("2 gateways p99 %s ms vs raw %s ms (%+.2f ms) at %s tokens/s written",
			ms(two.Lat.Percentile(0.99)), ms(raw.Lat.Percentile(0.99)), float64(d)/1e6, rate(sh.Rate)),
		Met: d <= 2*time.Millisecond && two.Totals.Clean(),
	})
	return nil
}

// IngestParams configures the ingest scenario.
type IngestParams struct {
	Size             int
	Window           int
	Duration, Warmup time.Duration
	// Rate is the fixed rate of the latency phase (tokens/s).
	Rate float64
}

// Ingest runs one stream as fast as it goes (closed loop), then at a
// fixed rate, one writer and one reader: raw NATS, one gateway, two.
func Ingest(ctx context.Context, env *Env, p IngestParams) error {
	sys, err := env.StartSystem(ctx, 2)
	if err != nil {
		return err
	}
	defer sys.Close()
	gw0, gw1 := sys.Gateways[0], sys.Gateways[1]
	sh := Shape{Conversations: 1, Writers: 1, Readers: 1, Size: p.Size, Window: p.Window, Duration: p.Duration, Warmup: p.Warmup, Batch: true}
	run3 := func(sh Shape, tag string) ([]loadCol, error) {
		raw, err := RunNATSLoad(ctx, env, sys, sh, "ingest raw NATS "+tag)
		if err != nil {
			return nil, err
		}
		one, err := RunAMSLoad(ctx, env, sys, sh, gw0, gw0, "ingest 1 gateway "+tag)
		if err != nil {
			return nil, err
		}
		two, err := RunAMSLoad(ctx, env, sys, sh, gw0, gw1, "ingest 2 gateways "+tag)
		if err != nil {
			return nil, err
		}
		return []loadCol{{"raw NATS", raw}, {"1 gateway", one}, {"2 gateways", two}}, nil
	}
	load := env.Load()
	closed, err := run3(sh, "closed loop")
	if err != nil {
		return err
	}
	t := loadTable("ingest, one stream as fast as it goes: "+sh.String(), closed)
	t.Note("load average before: %s, after: %s", load, env.Load())
	t.Print(env.Out)

	load = env.Load()
	sh.Rate = p.Rate
	fixed, err := run3(sh, "fixed rate")
	if err != nil {
		return err
	}
	t = loadTable("ingest, one stream at a fixed rate: "+sh.String(), fixed)
	t.Note("load average before: %s, after: %s", load, env.Load())
	t.Print(env.Out)

	maxTwo, atRate := closed[2].res, fixed[2].res
	p99 := atRate.Lat.Percentile(0.99)
	env.Target(Target{
		Name: "ingest",
		Goal: "one stream ≥ 1,000 ordered tokens/s end to end at p99 < 10 ms",
		Measured: fmt.Sprintf("2 gateways: max %s tokens/s (order violations %d); at %s tokens/s p99 %s ms (order violations %d, lost %d)",
			rate(maxTwo.WrittenRate()), maxTwo.Totals.OrderViolations, rate(p.Rate), ms(p99), atRate.Totals.OrderViolations, atRate.Totals.Lost),
		Met: maxTwo.WrittenRate() >= 1000 && maxTwo.Totals.Clean() && atRate.Totals.Clean() &&
			p99 < 10*time.Millisecond && atRate.DeliveredRate() >= 0.95*p.Rate,
	})
	return nil
}
