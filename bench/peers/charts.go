package main

import (
	"errors"
	"fmt"
	"image/color"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writeCharts draws throughput by record size (produce and consume) and the
// end-to-end latency percentiles of the baseline workload, each as PNG and
// SVG in dir. It returns the chart names (file names without extension).
func writeCharts(rep *report, dir string) ([]string, error) {
	var names []string
	var errs []error
	for _, phase := range []string{phaseProduce, phaseConsume} {
		name := "throughput-" + phase
		ok, err := sizeChart(rep, phase, filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			names = append(names, name)
		}
	}
	ok, err := latencyChart(rep, filepath.Join(dir, "latency-e2e"))
	if err != nil {
		errs = append(errs, err)
	}
	if ok {
		names = append(names, "latency-e2e")
	}
	return names, errors.Join(errs...)
}

// palette is Tableau's ten colours and four more, so that fourteen series
// stay distinct (plotutil's default palette has seven).
var palette = []color.Color{
	color.RGBA{0x4e, 0x79, 0xa7, 0xff}, color.RGBA{0xf2, 0x8e, 0x2b, 0xff}, color.RGBA{0xe1, 0x57, 0x59, 0xff},
	color.RGBA{0x76, 0xb7, 0xb2, 0xff}, color.RGBA{0x59, 0xa1, 0x4f, 0xff}, color.RGBA{0xed, 0xc9, 0x48, 0xff},
	color.RGBA{0xb0, 0x7a, 0xa1, 0xff}, color.RGBA{0xff, 0x9d, 0xa7, 0xff}, color.RGBA{0x9c, 0x75, 0x5f, 0xff},
	color.RGBA{0xba, 0xb0, 0xac, 0xff}, color.RGBA{0x2f, 0x2f, 0x2f, 0xff}, color.RGBA{0x8c, 0x8c, 0x1f, 0xff},
	color.RGBA{0x1f, 0x4e, 0x79, 0xff}, color.RGBA{0xc0, 0x39, 0x2b, 0xff},
}

func colorOf(i int) color.Color { return palette[i%len(palette)] }

func save(p *plot.Plot, base string) error {
	for _, ext := range []string{".png", ".svg"} {
		if err := p.Save(11*vg.Inch, 5*vg.Inch, base+ext); err != nil {
			return err
		}
	}
	return nil
}

// sizeChart: grouped bars of MB/s per record size, one bar per target and
// generator, for 1 partition, acks=1, no compression.
func sizeChart(rep *report, phase, base string) (bool, error) {
	var sizes []int
	for _, r := range rep.Results {
		if r.Phase == phase && r.Err == "" && r.Partitions == 1 && r.Acks == "1" && r.Codec == "none" && !r.Sync &&
			!slices.Contains(sizes, r.Size) {
			sizes = append(sizes, r.Size)
		}
	}
	slices.Sort(sizes)
	if len(sizes) == 0 {
		return false, nil
	}
	ix := newIndex(rep.Results)
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s throughput by record size (1 partition, acks=1, no compression)", phase)
	p.Y.Label.Text = "payload MB/s"
	tgs := targetGens(rep.Results)
	width := vg.Points(min(60, 360/float64(len(tgs)+1)))
	n := 0
	for i, tg := range tgs {
		vals := make(plotter.Values, len(sizes))
		some := false
		for j, s := range sizes {
			k := workload{Size: s, Partitions: 1, Acks: "1", Codec: "none"}.key()
			if r := ix.get(tg[0], tg[1], phase, k); r != nil {
				vals[j] = r.MBps
				some = some || r.MBps > 0
			}
		}
		if !some {
			continue
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return false, err
		}
		bars.LineStyle.Width = vg.Length(0)
		bars.Color = colorOf(i)
		bars.Offset = vg.Length(float64(i)-float64(len(tgs)-1)/2) * width
		p.Add(bars)
		p.Legend.Add(shortName(tg[0], tg[1]), bars)
		n++
	}
	if n == 0 {
		return false, nil
	}
	labels := make([]string, len(sizes))
	for i, s := range sizes {
		labels[i] = sizeName(s)
	}
	p.NominalX(labels...)
	p.Legend.Top = true
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(4)
	p.Y.Min = 0
	p.Y.Max *= 1.5 // room for the legend
	return true, save(p, base)
}

// latencyChart: end-to-end p50, p99, p99.9 of the baseline workload, one line
// per target, on a log scale.
func latencyChart(rep *report, base string) (bool, error) {
	k := workload{Size: 1024, Partitions: 1, Acks: "1", Codec: "none"}.key()
	if !slices.ContainsFunc(rep.Results, func(r result) bool { return r.Phase == phaseE2E && r.Workload == k && r.E2E != nil }) {
		for _, r := range rep.Results { // no baseline: the first workload with latencies
			if r.Phase == phaseE2E && r.E2E != nil {
				k = r.Workload
				break
			}
		}
	}
	p := plot.New()
	p.Title.Text = "end-to-end latency at half of each target's peak rate (" + k + "; medians of the rounds)"
	p.Y.Label.Text = "µs (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	n := 0
	ix := newIndex(rep.Results)
	for _, tg := range targetGens(rep.Results) {
		r := ix.get(tg[0], tg[1], phaseE2E, k) // the median of the rounds
		if r == nil || r.E2E == nil {
			continue
		}
		pts := plotter.XYs{{X: 0, Y: r.E2E.P50}, {X: 1, Y: r.E2E.P99}, {X: 2, Y: r.E2E.P999}}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return false, err
		}
		c := colorOf(n)
		line.Color, points.Color = c, c
		points.Shape = plotutil.Shape(n)
		p.Add(line, points)
		p.Legend.Add(shortName(r.Target, r.Gen), line, points)
		n++
	}
	if n == 0 {
		return false, nil
	}
	p.NominalX("p50", "p99", "p99.9")
	p.X.Min, p.X.Max = -0.1, 3.2 // the legend sits right of p99.9
	p.Legend.Top = true
	p.Legend.Left = false
	return true, save(p, base)
}
