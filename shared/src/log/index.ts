export {
  createLogger,
  LOG_LEVELS,
  type Logger,
  type LoggerSettings,
  type LogLevel,
  REDACT_PATHS,
  requestLogger,
} from './logger.js';
