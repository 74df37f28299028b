package benchkit

import (
	"context"
	"errors"

	"github.com/amsrouter/ams/services/internal/config"
)


type avalancheFlags struct{}

func (avalancheFlags) register(*config.FlagSet) {}
func (avalancheFlags) params(Scale) int         { return 0 }

type faultFlags struct{}

func (faultFlags) register(*config.FlagSet, string) {}
func (faultFlags) params(Scale, string) int         { return 0 }

func Avalanche(context.Context, *Env, int) error { return errors.New("not implemented yet") }
func Kill(context.Context, *Env, int) error      { return errors.New("not implemented yet") }
func Jitter(context.Context, *Env, int) error    { return errors.New("not implemented yet") }
