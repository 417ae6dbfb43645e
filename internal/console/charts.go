package console

import (
	"fmt"

	"github.com/hallmark-iot/hallmark/internal/store"
)

// The overview's charts are drawn here, as numbers for an <svg> in the
// template: no script draws them, so they show without JavaScript and
// print, and the numbers are in the page as text beside them.

// barChart is an SVG bar chart: its geometry in viewBox units.
type barChart struct {
	ID            string // prefix of the ids its <title> and <desc> take
	Title, Desc   string
	Width, Height int
	Bars          []bar
	// Horizontal charts label each bar with a <text> at LabelX.
	Horizontal bool
}

// bar is one bar and what it counts.
type bar struct {
	X, Y, W, H int
	Label      string
	Count      int
	// TextX, TextY place a horizontal bar's label.
	TextX, TextY int
}

// Chart geometry.
const (
	hourBarWidth  = 4
	chartHeight   = 120
	reasonBarRow  = 22
	reasonLabelW  = 220
	reasonBarMaxW = 380
)

// onboardingChart draws onboardings per hour, oldest first: one bar an
// hour, scaled to the busiest hour.
func onboardingChart(series []store.TimeCount) barChart {
	c := barChart{ID: "onboardings-chart", Title: "Onboardings per hour over the last week",
		Width: max(len(series), 1) * hourBarWidth, Height: chartHeight}
	peak := 0
	total := 0
	for _, p := range series {
		peak = max(peak, p.Count)
		total += p.Count
	}
	c.Desc = fmt.Sprintf("%d onboardings in %d hours; the busiest hour had %d.", total, len(series), peak)
	for i, p := range series {
		if p.Count == 0 {
			continue // an empty hour draws nothing: the axis shows it
		}
		// An hour with onboardings is never invisible.
		h := max(p.Count*(chartHeight-2)/peak, 1)
		c.Bars = append(c.Bars, bar{X: i * hourBarWidth, Y: chartHeight - h, W: hourBarWidth - 1, H: h,
			Label: formatTime(p.Start), Count: p.Count})
	}
	return c
}

// failureChart draws refused onboardings by reason, one horizontal bar a
// reason, scaled to the most frequent.
func failureChart(reasons []store.ReasonCount) barChart {
	c := barChart{ID: "failures-chart", Title: "Refused onboardings by reason over the last day", Horizontal: true,
		Width: reasonLabelW + reasonBarMaxW + 60, Height: max(len(reasons), 1) * reasonBarRow}
	peak := 0
	for _, r := range reasons {
		peak = max(peak, r.Count)
	}
	c.Desc = fmt.Sprintf("%d reasons; the most frequent was refused %d times.", len(reasons), peak)
	if len(reasons) == 0 {
		c.Desc = "No onboarding was refused in the last day."
	}
	for i, r := range reasons {
		w := 0
		if peak > 0 {
			w = max(r.Count*reasonBarMaxW/peak, 1)
		}
		y := i * reasonBarRow
		c.Bars = append(c.Bars, bar{X: reasonLabelW, Y: y + 3, W: w, H: reasonBarRow - 6, Label: shorten(r.Reason, 32),
			Count: r.Count, TextX: reasonLabelW - 6, TextY: y + reasonBarRow - 7})
	}
	return c
}

// totals sums the last hour, day and week of an hourly series whose last
// bucket is the current hour.
func totals(series []store.TimeCount) (hour, day, week int) {
	for i := range series {
		n := series[len(series)-1-i].Count
		if i < 1 {
			hour += n
		}
		if i < 24 {
			day += n
		}
		week += n
	}
	return hour, day, week
}
