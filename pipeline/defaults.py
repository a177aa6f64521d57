"""Every configuration key of ExtremeBERT, declared once, with its default and a one-line comment.

YAML files under ``configs/`` only override these keys; ``--opts KEY VALUE`` overrides them again. An unknown key
anywhere is an error. The comment after each key is the documentation: the README's config reference is
generated from this file (``python -m pipeline.config_reference``), and a test keeps the two in sync.

Relative paths (the keys listed in ``PATH_KEYS``) resolve against the directory the command runs in.
"""
from yacs.config import CfgNode as CN

_C = CN()

# ---------------------------------------------------------------------------------------------------------------
_C.SYSTEM = CN()
_C.SYSTEM.NUM_GPUS = -1  # GPUs per node for pretraining/finetuning: -1 = all visible, 0 = CPU only
_C.SYSTEM.MAX_MEMORY_IN_GB = 16.0  # hard cap on the peak RAM of a data stage, all worker processes together (float)
_C.SYSTEM.NUM_WORKERS = 0  # CPU processes for data work: 0 = number of CPU cores
_C.SYSTEM.OUTPUT_ROOT = "runs"  # folder that receives everything the pipeline writes (datasets, runs, logs)
_C.SYSTEM.SEED = 42  # global random seed (sharding, masking, initialisation, data order)
_C.SYSTEM.HOSTFILE = ""  # DeepSpeed hostfile for multi-node pretraining ("" = single node)
_C.SYSTEM.MASTER_PORT = 0  # torch.distributed rendezvous port: 0 = pick a free one

# ---------------------------------------------------------------------------------------------------------------
_C.INSTALL = CN()
_C.INSTALL.ENABLED = True  # check that the running environment has every dependency before the other stages

# ---------------------------------------------------------------------------------------------------------------
_C.DEMO_DATA = CN()
_C.DEMO_DATA.ENABLED = False  # build the offline demo corpus and demo GLUE-format tasks first (the quickstart's data)
_C.DEMO_DATA.OUTPUT_DIR = "runs/demo_data"  # where the demo corpus (corpus/) and demo tasks (glue/) are written

# ---------------------------------------------------------------------------------------------------------------
_C.WANDB = CN()
_C.WANDB.ENABLED = False  # log pretraining/finetuning to Weights & Biases (the key comes from $WANDB_API_KEY)
_C.WANDB.PROJECT = "extremebert"  # wandb project name
_C.WANDB.ENTITY = ""  # wandb entity (team or user); "" = your default entity
_C.WANDB.MODE = "online"  # online | offline | disabled

# ---------------------------------------------------------------------------------------------------------------
_C.TOKENIZER = CN()
_C.TOKENIZER.NAME_OR_PATH = "bert-base-uncased"  # Hugging Face hub name or local tokenizer folder
_C.TOKENIZER.TRAIN = False  # train a new WordPiece vocabulary on the dataset's own text instead of loading one
_C.TOKENIZER.VOCAB_SIZE = 30522  # vocabulary size when TRAIN is True
_C.TOKENIZER.MIN_FREQUENCY = 2  # minimum count of a WordPiece token when TRAIN is True
_C.TOKENIZER.TRAIN_MAX_CHARS = 500_000_000  # characters of corpus used to train the vocabulary (0 = all)

# ---------------------------------------------------------------------------------------------------------------
_C.DATASET = CN()
_C.DATASET.ENABLED = True  # run the dataset stage (raw text -> text shards -> HDF5 samples)
_C.DATASET.ID = ""  # name of the prepared dataset; "" = derived from the inputs (their files' sizes and times) and every setting below
_C.DATASET.HUGGINGFACE_DATASETS = []  # hub datasets as [name, subset] or [name, subset, text_column], then optional "split=NAME", "revision=REF" items
_C.DATASET.CUSTOMIZED_DATASETS = []  # folders of .txt files, articles separated by blank lines
_C.DATASET.ENCODING_ERRORS = "strict"  # non-UTF-8 bytes in .txt files: strict (error) | replace | ignore
_C.DATASET.NUM_TRAIN_SHARDS = 256  # number of training shards
_C.DATASET.NUM_TEST_SHARDS = 128  # number of held-out (validation) shards
_C.DATASET.FRAC_TEST = 0.1  # fraction of the text routed to the held-out shards, in [0, 1)
_C.DATASET.MAX_SEQ_LENGTH = 128  # tokens per sample, [CLS] and [SEP] included
_C.DATASET.MASKING = "dynamic"  # static (masks written to disk, DUP_FACTOR copies) | dynamic (masks drawn at load)
_C.DATASET.MASKED_LM_PROB = 0.15  # fraction of tokens selected for the MLM loss, in (0, 1)
_C.DATASET.MAX_PREDICTIONS_PER_SEQ = 20  # cap on masked positions per sample
_C.DATASET.DUP_FACTOR = 10  # differently-masked copies of each sample in static mode
_C.DATASET.DO_LOWER_CASE = True  # lower-case text before tokenizing (must match the tokenizer)

# ---------------------------------------------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.PRESET = "bert-base"  # bert-tiny | bert-mini | bert-small | bert-medium | bert-base | bert-large
_C.MODEL.HIDDEN_SIZE = 0  # hidden width; 0 = the preset's
_C.MODEL.NUM_HIDDEN_LAYERS = 0  # transformer blocks; 0 = the preset's
_C.MODEL.NUM_ATTENTION_HEADS = 0  # attention heads; 0 = the preset's
_C.MODEL.INTERMEDIATE_SIZE = 0  # feed-forward width; 0 = the preset's (4 x hidden)
_C.MODEL.HIDDEN_ACT = "gelu"  # feed-forward activation: gelu | relu | gelu_new
_C.MODEL.HIDDEN_DROPOUT_PROB = 0.1  # dropout on hidden states, in [0, 1)
_C.MODEL.ATTENTION_PROBS_DROPOUT_PROB = 0.1  # dropout on attention probabilities, in [0, 1)
_C.MODEL.ENCODER_LN_MODE = "pre-ln"  # pre-ln (stable at high LR) | post-ln (original BERT)
_C.MODEL.MAX_POSITION_EMBEDDINGS = 512  # longest sequence the position embeddings cover
_C.MODEL.COMPILE = False  # wrap the model in torch.compile

# ---------------------------------------------------------------------------------------------------------------
_C.PRETRAIN = CN()
_C.PRETRAIN.ENABLED = True  # run the pretraining stage (HDF5 samples -> final_model/)
_C.PRETRAIN.ID = ""  # name of the pretraining run; "" = derived from the dataset ID and every setting below
_C.PRETRAIN.NUM_STEPS = 23000  # optimizer steps (the step schedule's horizon and an exact stop)
_C.PRETRAIN.TOTAL_TRAINING_HOURS = 24.0  # wall-clock budget in hours (the time schedule's horizon and a stop)
_C.PRETRAIN.SCHEDULE_BASIS = "step"  # step (schedule over NUM_STEPS) | time (over TOTAL_TRAINING_HOURS)
_C.PRETRAIN.SCHEDULER = "esd"  # esd (Elastic Step Decay) | linear | cosine | constant, after linear warmup
_C.PRETRAIN.WARMUP_PROPORTION = 0.06  # fraction of the horizon spent in linear warmup, in [0, 1)
_C.PRETRAIN.LEARNING_RATE = 1e-3  # peak learning rate
_C.PRETRAIN.BATCH_SIZE = 4096  # global batch size in samples (micro batch x GPUs x accumulation)
_C.PRETRAIN.MICRO_BATCH_SIZE_PER_GPU = 32  # samples per forward pass per GPU (or per CPU process)
_C.PRETRAIN.PRECISION = "auto"  # auto (GPU: bf16 where supported, else fp16; CPU: bf16 if it has bf16 instructions, else fp32) | fp16 | bf16 | fp32
_C.PRETRAIN.OPTIMIZER = "adamw"  # adamw
_C.PRETRAIN.WEIGHT_DECAY = 0.01  # AdamW weight decay (not applied to biases and LayerNorm)
_C.PRETRAIN.ADAM_BETA1 = 0.9  # AdamW beta1
_C.PRETRAIN.ADAM_BETA2 = 0.98  # AdamW beta2
_C.PRETRAIN.ADAM_EPS = 1e-6  # AdamW epsilon
_C.PRETRAIN.GRADIENT_CLIPPING = 0.0  # max gradient norm; 0 = no clipping
_C.PRETRAIN.ZERO_STAGE = 0  # DeepSpeed ZeRO stage 0-3
_C.PRETRAIN.LOG_EVERY_STEPS = 10  # steps between console/metrics.jsonl lines
_C.PRETRAIN.VALIDATION_EVERY_STEPS = 500  # steps between validation-loss evaluations (0 = only at the end)
_C.PRETRAIN.VALIDATION_MAX_SAMPLES = 8192  # held-out samples used per validation (0 = all)
_C.PRETRAIN.CHECKPOINT_EVERY_STEPS = 1000  # steps between resumable DeepSpeed checkpoints
_C.PRETRAIN.KEEP_CHECKPOINTS = 2  # newest checkpoints kept on disk
_C.PRETRAIN.EARLY_STOP_TIME_MINUTES = 0.0  # after this many minutes, stop if validation loss > EARLY_STOP_EVAL_LOSS
_C.PRETRAIN.EARLY_STOP_EVAL_LOSS = 0.0  # loss threshold for the early stop above (0 = off)
_C.PRETRAIN.ESD = CN()
_C.PRETRAIN.ESD.RATIO = 0.7071067811865476  # r in the ESD equation: interval i ends at 1 - r^i of the horizon
_C.PRETRAIN.ESD.START_INTERVAL = 6  # l in the ESD equation: the rate stays at its peak until 1 - r^l

# ---------------------------------------------------------------------------------------------------------------
_C.FINETUNE = CN()
_C.FINETUNE.ENABLED = True  # run GLUE finetuning
_C.FINETUNE.MODEL_NAME_OR_PATH = ""  # model to finetune; "" = the final_model this run pretrained
_C.FINETUNE.TASKS = ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"]  # GLUE tasks (AX comes with MNLI)
_C.FINETUNE.GLUE_DIR = ""  # local GLUE data in the official layout; "" = nyu-mll/glue from the Hugging Face Hub
_C.FINETUNE.SEEDS = [42, 43, 44]  # seeds per hyperparameter configuration (best = median over seeds)
_C.FINETUNE.MAX_SEQ_LENGTH = 128  # longest tokenized input; batches are padded only to their own longest
_C.FINETUNE.WEIGHT_DECAY = 0.01  # AdamW weight decay
_C.FINETUNE.WARMUP_RATIO = 0.06  # fraction of steps spent in linear warmup
_C.FINETUNE.LR_SCHEDULER = "polynomial"  # transformers lr_scheduler_type: polynomial | linear | cosine | constant
_C.FINETUNE.PRECISION = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU) | fp16 | bf16 | fp32
_C.FINETUNE.GROUP_BY_LENGTH = True  # batch examples of similar length together (less padding)
_C.FINETUNE.MAX_TRAIN_SAMPLES = 0  # cap on training rows per task (0 = all); for quick runs
_C.FINETUNE.MAX_EVAL_SAMPLES = 0  # cap on dev rows per task (0 = all); for quick runs
_C.FINETUNE.MULTIPROCESS_GPU_LIST = []  # GPU groups that run jobs in parallel, e.g. [[0, 1], [2, 3]]; [] = one at a time
_C.FINETUNE.RANDOM_INIT_BASELINE = False  # also run the grid from random weights (same architecture) into finetune_random_init/
_C.FINETUNE.SEARCH = CN()
_C.FINETUNE.SEARCH.LARGE = CN()
_C.FINETUNE.SEARCH.LARGE.TASKS = ["MNLI", "QQP", "QNLI"]  # tasks that use the LARGE grid; all others use SMALL
_C.FINETUNE.SEARCH.LARGE.LEARNING_RATES = [5e-5, 8e-5]  # learning rates tried on large tasks
_C.FINETUNE.SEARCH.LARGE.BATCH_SIZES = [32]  # batch sizes tried on large tasks
_C.FINETUNE.SEARCH.LARGE.EPOCHS = [3, 5]  # epoch counts tried on large tasks
_C.FINETUNE.SEARCH.SMALL = CN()
_C.FINETUNE.SEARCH.SMALL.LEARNING_RATES = [1e-5, 3e-5, 5e-5, 8e-5]  # learning rates tried on small tasks
_C.FINETUNE.SEARCH.SMALL.BATCH_SIZES = [16, 32]  # batch sizes tried on small tasks
_C.FINETUNE.SEARCH.SMALL.EPOCHS = [3, 5, 10]  # epoch counts tried on small tasks
_C.FINETUNE.STILT = CN()
_C.FINETUNE.STILT.ENABLED = True  # start the TARGETS from the best model of the SOURCE task's search
_C.FINETUNE.STILT.SOURCE = "MNLI"  # intermediate task
_C.FINETUNE.STILT.TARGETS = ["RTE", "MRPC", "STS-B"]  # tasks that start from the SOURCE model

# ---------------------------------------------------------------------------------------------------------------
_C.RESULT_COLLECTION = CN()
_C.RESULT_COLLECTION.ENABLED = True  # collect dev tables, best configs, GLUE score, report and submission zip
_C.RESULT_COLLECTION.ALLOW_PARTIAL = False  # write the submission zip even when some GLUE tasks are missing
_C.RESULT_COLLECTION.WRITE_SUBMISSION = True  # write glue_submission.zip for gluebenchmark.com
_C.RESULT_COLLECTION.WRITE_PLOTS = True  # draw the pretraining curves and per-task seed spread into the report

# Keys whose string values are filesystem paths (relative ones resolve against the current directory).
# A "name or path" key is resolved only when the value looks like a path or exists on disk.
PATH_KEYS = ("SYSTEM.OUTPUT_ROOT", "SYSTEM.HOSTFILE", "DEMO_DATA.OUTPUT_DIR", "DATASET.CUSTOMIZED_DATASETS",
             "FINETUNE.GLUE_DIR")
NAME_OR_PATH_KEYS = ("TOKENIZER.NAME_OR_PATH", "FINETUNE.MODEL_NAME_OR_PATH")


def get_default_config() -> CN:
    """A fresh, mutable copy of the default configuration."""
    return _C.clone()
