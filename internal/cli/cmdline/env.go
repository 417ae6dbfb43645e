package cmdline

import (
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// EnvPrefix starts the name of every environment variable a hallmark flag
// is bound to.
const EnvPrefix = "HALLMARK_"

// envAnnotation is the flag annotation that holds the variable a flag is
// bound to. BindEnv writes it; ApplyEnv and the help read it, so what the
// help promises and what is read cannot drift apart.
const envAnnotation = "hallmark.env"

// BindEnv binds the named flags of fs, or every flag of fs when no name is
// given, to the environment variable prefix + the flag's name in upper
// case with dashes as underscores (--data-dir: HALLMARK_DATA_DIR). The
// flag's help then names the variable, and ApplyEnv sets the flag from it
// when the command line does not. Defaults shown in the help stay the
// flag's own, never a value from the environment, which may be a secret.
// Binding a flag twice changes nothing; naming a flag fs does not have is
// a programming error and panics.
func BindEnv(fs *pflag.FlagSet, prefix string, names ...string) {
	bind := func(f *pflag.Flag) {
		if _, ok := EnvVar(f); ok {
			return
		}
		name := prefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if err := fs.SetAnnotation(f.Name, envAnnotation, []string{name}); err != nil {
			panic(err)
		}
		f.Usage += " [$" + name + "]"
	}
	if len(names) == 0 {
		fs.VisitAll(bind)
		return
	}
	for _, n := range names {
		f := fs.Lookup(n)
		if f == nil {
			panic("cmdline.BindEnv: no flag --" + n)
		}
		bind(f)
	}
}

// EnvVar returns the environment variable f is bound to, if any.
func EnvVar(f *pflag.Flag) (string, bool) {
	v := f.Annotations[envAnnotation]
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

// ApplyEnv sets every bound flag of fs that the command line did not set
// from its environment variable, when that is set, through the flag's own
// Set: the value is parsed and checked as the flag would be. A value the
// flag refuses is a usage error naming the variable. Root calls it before
// any command runs, after the command line is parsed, so the command line
// wins over the environment, which wins over the defaults.
func ApplyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		name, bound := EnvVar(f)
		if err != nil || !bound || f.Changed {
			return
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = Usagef("%s=%q: %v", name, v, serr)
		}
	})
	return err
}
