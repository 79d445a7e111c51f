package solanatest

// execMarketplace runs the marketplace program (filled in once the program
// client lands).
func execMarketplace(in *instr) *InstructionError {
	return progErr("InvalidInstructionData", "solanatest: marketplace program not yet executed")
}
