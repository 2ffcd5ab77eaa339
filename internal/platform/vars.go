package platform

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Vars binds configuration values to a flag and an environment variable of the same meaning.
// The flag wins over the environment, the environment over the default. Parse errors name the
// variable and are collected, so that start-up reports all of them at once.
//
// The same name may be bound more than once (two services in one process both read
// EXTERNAL_IP, say); every bound target then receives the value.
type Vars struct {
	fs     *flag.FlagSet
	getenv func(string) string
	vars   map[string]*boundVar
	order  []string
	errs   []error
}

type boundVar struct {
	env     string
	targets []func(string) error
	value   string
	set     bool // value came from a flag or the environment
}

// NewVars returns a binder that registers flags on fs and reads the environment with getenv.
func NewVars(fs *flag.FlagSet, getenv func(string) string) *Vars {
	return &Vars{fs: fs, getenv: getenv, vars: map[string]*boundVar{}}
}

// bind registers a flag once and adds parse as a target of its value.
func (v *Vars) bind(name, env, def, usage string, parse func(string) error) {
	b, ok := v.vars[name]
	if !ok {
		b = &boundVar{env: env, value: def}
		v.vars[name] = b
		v.order = append(v.order, name)
		if e := v.getenv(env); e != "" && env != "" {
			b.value, b.set = e, true
		}
		help := usage
		if env != "" {
			help = fmt.Sprintf("%s (env %s)", usage, env)
		}
		if def != "" {
			help = fmt.Sprintf("%s (default %s)", help, def)
		}
		v.fs.Func(name, help, func(s string) error {
			b.value, b.set = s, true
			return nil
		})
	}
	b.targets = append(b.targets, parse)
}

// String binds a string.
func (v *Vars) String(p *string, name, env, def, usage string) {
	v.bind(name, env, def, usage, func(s string) error { *p = s; return nil })
}

// Int binds an integer.
func (v *Vars) Int(p *int, name, env string, def int, usage string) {
	v.bind(name, env, strconv.Itoa(def), usage, func(s string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		*p = n
		return nil
	})
}

// PositiveInt binds a whole number that must be at least 1 (a limit or a size, where zero
// would silently mean something else).
func (v *Vars) PositiveInt(p *int, name, env string, def int, usage string) {
	v.bind(name, env, strconv.Itoa(def), usage, func(s string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a whole number of at least 1", s)
		}
		*p = n
		return nil
	})
}

// Port binds a TCP/UDP port number (1-65535).
func (v *Vars) Port(p *int, name, env string, def int, usage string) {
	v.bind(name, env, strconv.Itoa(def), usage, func(s string) error {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not a port number (1-65535)", s)
		}
		*p = n
		return nil
	})
}

// Bool binds a boolean, parsed strictly: true/false, 1/0, yes/no, on/off, nothing else.
func (v *Vars) Bool(p *bool, name, env string, def bool, usage string) {
	v.bind(name, env, strconv.FormatBool(def), usage, func(s string) error {
		b, err := ParseBool(s)
		if err != nil {
			return err
		}
		*p = b
		return nil
	})
}

// Duration binds a Go duration such as 30s or 4h.
func (v *Vars) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	v.bind(name, env, def.String(), usage, func(s string) error {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return fmt.Errorf("%q is not a duration such as 30s or 4h", s)
		}
		*p = d
		return nil
	})
}

// List binds a comma-separated list; empty items are dropped.
func (v *Vars) List(p *[]string, name, env, def, usage string) {
	v.bind(name, env, def, usage, func(s string) error {
		*p = SplitList(s)
		return nil
	})
}

// Func binds a value with a custom parser; its error should say what was expected.
func (v *Vars) Func(name, env, def, usage string, parse func(string) error) {
	v.bind(name, env, def, usage, parse)
}

// Resolve applies every bound value to its targets. Call it after parsing the flag set; the
// error names each variable that did not parse.
func (v *Vars) Resolve() error {
	for _, name := range v.order {
		b := v.vars[name]
		for _, t := range b.targets {
			if err := t(b.value); err != nil {
				v.errs = append(v.errs, fmt.Errorf("%s: %w", v.label(name), err))
				break
			}
		}
	}
	return errors.Join(v.errs...)
}

// EnvNames lists the environment variables bound so far, in binding order.
func (v *Vars) EnvNames() []string {
	var names []string
	for _, name := range v.order {
		if env := v.vars[name].env; env != "" {
			names = append(names, env)
		}
	}
	return names
}

// Fail records a validation error about a variable, for checks that span several values.
func (v *Vars) Fail(name string, err error) {
	v.errs = append(v.errs, fmt.Errorf("%s: %w", v.label(name), err))
}

// label names a variable the way the operator set it: by its environment name and its flag.
func (v *Vars) label(name string) string {
	if b, ok := v.vars[name]; ok && b.env != "" {
		return fmt.Sprintf("%s (-%s)", b.env, name)
	}
	return "-" + name
}

// ParseBool parses a boolean strictly, so that FORCE_RELAY=false means false and a typo is an
// error rather than a silent default.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "yes", "y", "on":
		return true, nil
	case "0", "f", "false", "no", "n", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use true or false)", s)
}

// SplitList splits a comma-separated list, trimming spaces and dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
