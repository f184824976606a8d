package postgres_test

import (
	"context"
	"fmt"

	"github.com/dsyncio/dsync/connectors/postgres"
	"github.com/dsyncio/dsync/sdk"
)

// The connector is served as a plugin like any other.
func ExampleNew() {
	sdk.Serve(sdk.Plugin{Connector: postgres.New()})
}

// After a flow is reset, drop the slot and publication of its update
// cursor, if dsync owns them.
func ExampleDropReplication() {
	var cursor []byte // the update cursor of the flow's plan
	rep, err := postgres.ReplicationOf(cursor)
	if err != nil {
		fmt.Println(err)
		return
	}
	slot, pub := "", ""
	if rep.SlotOwned {
		slot = rep.Slot
	}
	if rep.PublicationOwned {
		pub = rep.Publication
	}
	err = postgres.DropReplication(context.Background(), "postgres://dsync@db.example.com/app", slot, pub)
	fmt.Println(err)
}
