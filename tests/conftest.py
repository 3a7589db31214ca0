pytest_plugins = ["harness.fixtures", "harness.r2_fixtures", "harness.fault_fixtures", "harness.comfyui_fixtures"]
