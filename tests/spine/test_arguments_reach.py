"""Every argument of wrapper/args/argdefs.py has a test through the CLI that fails if its value is dropped
on the way to what it configures; this module keeps the list and checks it against the table.

A new argument without an entry here fails `test_every_argument_names_a_test_or_an_exception`;
an entry naming a test that is gone or renamed fails `test_every_named_test_exists`. Before
naming a test, check that it really compares the job with and without the value (or that the
default would make it fail). Read with `ast`, so no test module is imported here.
"""
from __future__ import annotations

import ast
from pathlib import Path

from wrapper.args.argdefs import ARGS

TESTS = Path(__file__).resolve().parents[1]

PAYLOAD = "payload/test_arguments_payload_cli.py"
CONTROL = "spine/test_arguments_control_cli.py"
STAGING = "staging/test_arguments_staging_cli.py"
MODEL_FILES = "payload/test_model_files_cli.py"
CLI = "spine/test_cli_errors.py"
MULTI = "scale/test_multiworker_trf.py"
SERVING = "faults/test_faults_serving.py"

# argument -> the tests ("file::function", relative to tests/) that prove it reaches its use
REACHES = {
    "mode": [f"{MODEL_FILES}::test_reference_small_evaluates_through_the_cli_and_finds_the_beam",
             f"{PAYLOAD}::test_inference_arguments_reach_the_prediction_file",
             f"{PAYLOAD}::test_random_seed_sets_the_initial_weights_and_the_same_seed_reproduces_them"],
    "inputEventsFile": [f"{PAYLOAD}::test_early_stopping_ends_the_training_when_validation_stops_improving",
                        f"{PAYLOAD}::test_max_events_and_learning_rate_reach_the_training"],
    "modelFile": [f"{MODEL_FILES}::test_infer_runs_the_network_of_the_model_file_without_model_config"],
    "modelConfig": [f"{MODEL_FILES}::test_a_model_config_contradicting_the_file_is_refused"],
    "maxEvents": [f"{PAYLOAD}::test_max_events_and_learning_rate_reach_the_training",
                  f"{PAYLOAD}::test_inference_arguments_reach_the_prediction_file"],
    "skipEvents": [f"{PAYLOAD}::test_inference_arguments_reach_the_prediction_file"],
    "randomSeed": [f"{PAYLOAD}::test_random_seed_sets_the_initial_weights_and_the_same_seed_reproduces_them"],
    "outputPredFile": [f"{PAYLOAD}::test_inference_arguments_reach_the_prediction_file"],
    "outputModelFile": [f"{PAYLOAD}::test_random_seed_sets_the_initial_weights_and_the_same_seed_reproduces_them"],
    "outputMetricsFile": [f"{PAYLOAD}::test_max_events_and_learning_rate_reach_the_training"],
    "outputPlotFile": [f"{PAYLOAD}::test_epochs_batch_size_validation_schedule_and_plot_shape_the_run",
                       f"{PAYLOAD}::test_inference_arguments_reach_the_prediction_file"],
    "predictionFormat": [f"{PAYLOAD}::test_inference_arguments_reach_the_prediction_file"],
    "outputPrefix": ["faults/test_faults_uploads.py::test_upload_refused_by_the_store_leaves_nothing_on_s3"],
    "epochs": [f"{PAYLOAD}::test_epochs_batch_size_validation_schedule_and_plot_shape_the_run"],
    "batchSize": [f"{PAYLOAD}::test_epochs_batch_size_validation_schedule_and_plot_shape_the_run"],
    "learningRate": [f"{PAYLOAD}::test_max_events_and_learning_rate_reach_the_training",
                     f"{PAYLOAD}::test_epochs_batch_size_validation_schedule_and_plot_shape_the_run"],
    "validationSplit": [f"{PAYLOAD}::test_epochs_batch_size_validation_schedule_and_plot_shape_the_run"],
    "loss": [f"{PAYLOAD}::test_loss_chooses_the_loss_function"],
    "cropSize": [f"{PAYLOAD}::test_crop_size_trains_on_crops_and_beam_fraction_chooses_them",
                 f"{MODEL_FILES}::test_the_reference_recipe_trains_through_the_trf"],
    "beamFraction": [f"{PAYLOAD}::test_crop_size_trains_on_crops_and_beam_fraction_chooses_them"],
    "lrSchedule": [f"{PAYLOAD}::test_epochs_batch_size_validation_schedule_and_plot_shape_the_run",
                   f"{MODEL_FILES}::test_the_reference_recipe_trains_through_the_trf"],
    "warmupSteps": [f"{PAYLOAD}::test_epochs_batch_size_validation_schedule_and_plot_shape_the_run"],
    "classWeights": [f"{PAYLOAD}::test_class_weights_are_the_weights_of_the_loss"],
    "earlyStopping": [f"{PAYLOAD}::test_early_stopping_ends_the_training_when_validation_stops_improving"],
    "checkpointPrefix": ["faults/test_faults_signals.py::"
                         "test_sigkill_during_training_then_the_retry_resumes_from_the_store"],
    "checkpointInterval": [f"{PAYLOAD}::test_checkpoint_interval_adds_checkpoints_within_an_epoch"],
    "resume": [f"{PAYLOAD}::test_resume_false_starts_afresh_beside_a_checkpoint_a_default_job_resumes"],
    "buildManifest": [f"{PAYLOAD}::test_inference_arguments_reach_the_prediction_file"],
    "build": [f"{PAYLOAD}::test_inference_arguments_reach_the_prediction_file"],
    "device": [f"{CONTROL}::test_device_restricts_the_build_choice"],
    "requireGPU": ["faults/test_faults_fail_fast.py::test_require_gpu_on_a_cpu_node_exits_69_before_fetching_a_byte"],
    "precision": [f"{PAYLOAD}::test_inference_arguments_reach_the_prediction_file"],
    "multiWorker": [f"{CONTROL}::test_multi_worker_off_makes_each_launched_copy_a_job_of_its_own"],
    # both ranks meet on a free port the test picks, and the report's workers name it
    "workerPort": [f"{MULTI}::test_two_trf_ranks_train_one_model_written_by_the_chief_alone"],
    # the chief's failure names the timeout it was given
    "workerTimeout": [f"{MULTI}::test_a_worker_killed_mid_training_fails_the_chief_with_worker_lost"],
    "nThreads": [f"{PAYLOAD}::test_inference_arguments_reach_the_prediction_file"],
    "showPlatform": [f"{CONTROL}::test_show_platform_prints_the_platform_and_build_without_a_job"],
    "s3Endpoint": [f"{STAGING}::test_s3_endpoint_and_path_style_shape_the_request"],
    "s3PathStyle": [f"{STAGING}::test_s3_endpoint_and_path_style_shape_the_request"],
    "accessMode": ["faults/test_faults_direct.py::test_direct_access_through_the_cli_reads_in_place"],
    "stagingThreads": [f"{STAGING}::test_staging_threads_bound_the_transfers_in_flight_at_the_server"],
    "timeLimit": ["faults/test_faults_deadlines.py::test_time_limit_25_on_a_long_training"],
    "dryRun": [f"{CLI}::test_dry_run_prints_the_plan_without_a_framework"],
    "debug": [f"{CONTROL}::test_debug_from_the_spec_puts_the_traceback_in_the_log",
              f"{CLI}::test_debug_shows_the_traceback_in_the_log"],
    "argJSON": [f"{CONTROL}::test_arg_json_values_reach_the_job_and_the_command_line_wins"],
    "containerImage": [f"{CONTROL}::test_container_image_is_logged_and_ignored"],
    "help": [f"{CLI}::test_help_lists_every_argument_without_a_framework"],
    "inferenceServer": [f"{SERVING}::test_through_the_server_the_job_writes_what_an_in_process_job_writes"],
    "inferenceModel": [f"{SERVING}::test_a_model_the_server_lacks_exits_9_naming_it"],
    "inferenceConcurrency": [f"{SERVING}::test_through_the_server_the_job_writes_what_an_in_process_job_writes"],
    "inferenceTimeout": [f"{SERVING}::test_a_request_that_hangs_times_out_and_exits_64"],
    "inferenceRetries": [f"{SERVING}::test_a_server_that_dies_mid_job_exits_64_server_lost"],
    "inferenceFallback": [f"{SERVING}::test_with_fallback_the_events_after_the_server_died_run_in_process"],
}

# argument -> why no CLI test here can show it reach its use
EXCEPTIONS = {
    "gpus": "it only limits usable GPUs, and the suite's nodes (and its CPU-only TensorFlow) have none: "
            "min(0, N) is 0 whatever N. The mapping to the payload's StepConfig.gpus is tested in "
            "process by tests/scale/test_cluster.py::test_flow_helpers_for_a_summit_node_with_six_gpus",
}


def test_every_argument_names_a_test_or_an_exception():
    names = {a.name for a in ARGS}
    assert not REACHES.keys() & EXCEPTIONS.keys()
    assert sorted(names - REACHES.keys() - EXCEPTIONS.keys()) == [], "arguments without a test"
    assert sorted((REACHES.keys() | EXCEPTIONS.keys()) - names) == [], "entries for no argument"
    assert all(REACHES.values()) and all(len(why) > 40 for why in EXCEPTIONS.values())


def _functions(path: Path) -> set:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_named_test_exists():
    missing = []
    for argument, tests in sorted(REACHES.items()):
        for test in tests:
            file, function = test.split("::")
            path = TESTS / file
            if not path.is_file() or function not in _functions(path):
                missing.append(f"{argument}: {test}")
    assert missing == []
