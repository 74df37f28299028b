package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/amsrouter/ams/services/account/accountd"
	"github.com/amsrouter/ams/services/internal/config"
	"github.com/amsrouter/ams/services/link/linkd"
)

// migrators are the services whose schema `ams migrate` applies.
var migrators = map[string]func(ctx context.Context, databaseURL string) error{
	"account": accountd.Migrate,
	"link":    linkd.Migrate,
}

// runMigrate applies one service's pending migrations and exits: the
// migration job of a deployment, run before the services roll out.
func runMigrate(ctx context.Context, e env, args []string) error {
	var service, databaseURL string
	fs := config.New("ams migrate", "MIGRATE", e.getenv, e.stderr)
	fs.String(&service, "service", "", "service whose schema to migrate: account or link (required)")
	fs.String(&databaseURL, "database-url", "", "database: postgres://…, postgresql://… or sqlite:<path> (required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	migrate, ok := migrators[service]
	if !ok {
		return fmt.Errorf("-service must be account or link, not %q", service)
	}
	if databaseURL == "" {
		return fmt.Errorf("database-url is required: set -database-url or %s", fs.Env("database-url"))
	}
	if err := migrate(ctx, databaseURL); err != nil {
		return fmt.Errorf("migrate %s: %w", service, err)
	}
	fmt.Fprintf(e.stdout, "%s schema is up to date\n", service)
	return nil
}
