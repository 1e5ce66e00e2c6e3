package correlator

import "log/slog"

// newEngine builds the detection engine of cfg. The rule language and its
// engine (package detect) are not part of this build yet: until they are,
// a correlator runs detections only with WithDetector, and says so.
func newEngine(cfg DetectConfig, log *slog.Logger) (Detector, error) {
	log.Warn("detection rules configured but no detection engine is built in; sessions only",
		"shipped", cfg.Shipped, "rules_dir", cfg.RulesDir)
	return nil, nil
}
