import CFuzzDriver

// SwiftPM links an executable with `main` aliased to `<module>_main`, which -parse-as-library
// never emits; this entry point hands control to libFuzzer's driver.
@_cdecl("FuzzCloudEvents_main")
func FuzzCloudEventsMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    meshgate_fuzz_main(argc, argv)
}
