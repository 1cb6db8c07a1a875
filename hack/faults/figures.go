package main

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/mumoshu/aws-secret-controller/pkg/controller"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

// result is one scenario's figures.
type result struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Fault string `json:"fault"`
	// Seconds is the time to recover; Recovery says from when to when.
	Seconds  float64 `json:"seconds"`
	Recovery string  `json:"recovery"`
	// Attempts are the controller's requests to Secrets Manager as the proxy saw them, by
	// outcome; Answered are those kumo logged; Operations are GetSecretValue calls by the
	// controller's own metric (retries inside the SDK are one operation), a lower bound when
	// OperationsPartial says processes ended before they could be scraped.
	Attempts          int            `json:"attempts"`
	Outcomes          map[string]int `json:"attemptsByOutcome"`
	Answered          int            `json:"answeredByEmulator"`
	Operations        int            `json:"operationsByMetrics"`
	Succeeded         int            `json:"successfulOperationsByMetrics"`
	OperationsPartial int            `json:"processesUnscraped"`
	// Writes are the controller's Kubernetes writes in the scenario's window, from the audit
	// log, by resource and verb; Conflicts are its requests answered 409.
	Writes    map[string]int `json:"writes"`
	Conflicts int            `json:"conflicts"`
	// Restarts are processes that exited without being asked to and were started again.
	Restarts int `json:"restarts"`
	// ErrorLines are klog error lines in the controller's logs; Leaked are secret values found
	// in them (must be 0).
	ErrorLines int `json:"errorLines"`
	Leaked     int `json:"leakedValues"`
	// Bad are Secrets the checker ever saw holding anything but one whole version (blanked,
	// partly written, mixed); Checks are the lists it made (and how many failed).
	Bad          int      `json:"badSecrets"`
	Checks       int      `json:"checkerLists"`
	ChecksFailed int      `json:"checkerListsFailed"`
	Notes        []string `json:"notes"`
	Verdicts     []check  `json:"checks"`
}

// check is one thing a scenario must show.
type check struct {
	What     string `json:"what"`
	Measured string `json:"measured"`
	OK       bool   `json:"ok"`
}

func (r *result) check(ok bool, what, measuredFormat string, args ...any) {
	r.Verdicts = append(r.Verdicts, check{What: what, Measured: fmt.Sprintf(measuredFormat, args...), OK: ok})
}

func (r *result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *result) failed() []string {
	var out []string
	for _, c := range r.Verdicts {
		if !c.OK {
			out = append(out, fmt.Sprintf("%s: %s (measured %s)", r.ID, c.What, c.Measured))
		}
	}
	return out
}

// window is a span of a scenario that figures are counted in.
type window struct{ from, to time.Time }

func (w window) has(t time.Time) bool { return !t.Before(w.from) && !t.After(w.to) }

// proxyFigures counts the controller's requests at the proxy in a window.
func proxyFigures(reqs []testenv.ProxyRequest, win window) (total int, outcomes map[string]int) {
	outcomes = map[string]int{}
	for _, r := range reqs {
		if strings.Contains(r.UserAgent, "app/"+controller.ComponentName) && win.has(r.Time) {
			total++
			outcomes[r.Outcome]++
		}
	}
	return total, outcomes
}

// attemptRates are the controller's requests per second at the proxy: the mean over a window,
// and the busiest second.
func attemptRates(reqs []testenv.ProxyRequest, win window) (mean float64, peak int) {
	perSecond := map[int64]int{}
	n := 0
	for _, r := range reqs {
		if strings.Contains(r.UserAgent, "app/"+controller.ComponentName) && win.has(r.Time) {
			n++
			perSecond[r.Time.Unix()]++
		}
	}
	for _, c := range perSecond {
		peak = max(peak, c)
	}
	if secs := win.to.Sub(win.from).Seconds(); secs > 0 {
		mean = float64(n) / secs
	}
	return mean, peak
}

// auditFigures are the controller's requests in a window, from the audit log.
type auditFigures struct {
	writes    map[string]int // "secrets.create", "awssecrets/status.update", "events.create", ...
	conflicts int
	// lists are the lists the controller made, by resource: LIST requests, and watches that
	// stream a list (sendInitialEvents=true, client-go's WatchListClient, which the binary turns
	// on). (A watch that expired is not here: the watch cache sends its 410 inside a watch
	// answered 200.)
	lists map[string]int
}

func countAudit(events []testenv.AuditEvent, win window) auditFigures {
	f := auditFigures{writes: map[string]int{}, lists: map[string]int{}}
	for _, ev := range events {
		if !strings.HasPrefix(ev.UserAgent, controller.ComponentName) || !win.has(ev.StageTimestamp) || ev.ObjectRef == nil {
			continue
		}
		res := ev.Resource()
		switch ev.Verb {
		case "create", "update", "patch", "delete":
			if ev.ObjectRef.Resource == "leases" {
				continue
			}
			// Every write request counts, whatever its answer: a 504 to a client that died may
			// still have been written.
			f.writes[res+"."+ev.Verb]++
			if ev.Code() == 409 {
				f.conflicts++
			}
		case "list":
			f.lists[res]++
		case "watch":
			if ev.Stage == "ResponseStarted" && strings.Contains(ev.RequestURI, "sendInitialEvents=true") {
				f.lists[res]++
			}
		}
	}
	return f
}

// dataWrites are the writes that carry a sync's outcome: Secrets and AWSSecret status.
func (f auditFigures) dataWrites() int {
	n := 0
	for k, v := range f.writes {
		if strings.HasPrefix(k, "secrets.") || strings.HasPrefix(k, "awssecrets/status.") {
			n += v
		}
	}
	return n
}

var klogError = regexp.MustCompile(`^E\d{4} `)

// scanLogs counts klog error lines in the logs, and the lines holding any of the values.
func scanLogs(paths []string, values []string) (errorLines, leaked int, err error) {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return 0, 0, err
		}
		scanner := bufio.NewScanner(f)
		scanner.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for scanner.Scan() {
			line := scanner.Text()
			if klogError.MatchString(line) {
				errorLines++
			}
			for _, v := range values {
				if strings.Contains(line, v) {
					leaked++
					break
				}
			}
		}
		f.Close()
		if err := scanner.Err(); err != nil {
			return 0, 0, err
		}
	}
	return errorLines, leaked, nil
}
