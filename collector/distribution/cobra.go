package distribution

import "github.com/spf13/cobra"

// cobraCommand names the command type of otelcol.NewCommand.
type cobraCommand = cobra.Command
