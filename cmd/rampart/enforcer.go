package main

import (
	"context"

	"github.com/rampart-io/rampart/enforcer"
)

func runEnforcer(ctx context.Context, args []string) error {
	return enforcer.RunCommand(ctx, "enforcer", args)
}
