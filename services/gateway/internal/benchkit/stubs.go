package benchkit

import (
	"context"
	"errors"

	"github.com/amsrouter/ams/services/internal/config"
)

type resumeFlags struct{}

func (resumeFlags) register(*config.FlagSet) {}
func (resumeFlags) params(Scale) int         { return 0 }

type idleFlags struct{}

func (idleFlags) register(*config.FlagSet) {}
func (idleFlags) params(Scale) int         { return 0 }

type avalancheFlags struct{}

func (avalancheFlags) register(*config.FlagSet) {}
func (avalancheFlags) params(Scale) int         { return 0 }

type faultFlags struct{}

func (faultFlags) register(*config.FlagSet, string) {}
func (faultFlags) params(Scale, string) int         { return 0 }

func Resume(context.Context, *Env, int) error    { return nil }
func Idle(context.Context, *Env, int) error      { return nil }
func Avalanche(context.Context, *Env, int) error { return errors.New("not implemented yet") }
func Kill(context.Context, *Env, int) error      { return nil }
func Jitter(context.Context, *Env, int) error    { return nil }
