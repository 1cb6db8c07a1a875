package render

import "context"

// secretValue is the value behind the test secrets: it must never show up in an error.
const secretValue = "hunter2-Zq8v-SECRET"

// verdict is how the controller would treat an error: a rendering failure is permanent with
// its reason; anything else would be retried as transient.
type verdict struct {
	reason    string
	transient bool
}

func classify(err error) verdict {
	if re, ok := IsRenderError(err); ok {
		return verdict{reason: re.Reason}
	}
	return verdict{transient: true}
}

// testBudget is a fresh budget with the default limits and no deadline.
func testBudget() *budget { return &budget{ctx: context.Background(), limits: DefaultLimits} }
